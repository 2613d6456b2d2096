import { isValidDeviceId } from '@bulwark/protocol';
import { AppError, decodeCursor, encodeCursor, type Clock } from '../../kernel/index.ts';

import type { Device, DeviceEvent, DeviceGroup, DeviceStore, Fleet, GroupKind } from './model.ts';
import { matchesQuery, parseQuery, usesCapabilities, type Query } from './query.ts';

/** Flattened latest capability report per device (`cap.<field>` → value), from the commands module. */
export type CapabilityLookup = (
  tenant: string,
  deviceIds: readonly string[],
) => Promise<Map<string, Readonly<Record<string, string>>>>;

/** The group every tenant has; a policy attached to it limits its members (see the policy module). */
export const QUARANTINE = 'quarantine';
const FLEET_SEGMENT = /^[a-z0-9][a-z0-9_-]{0,62}$/;
const GROUP_NAME = /^[a-z0-9][a-z0-9._-]{0,63}$/;
export const MAX_FLEET_DEPTH = 8;
/** Placement events list at most this many devices; beyond it they name the whole tenant. */
const MAX_EVENT_IDS = 1000;

export function isValidFleetPath(path: string): boolean {
  const parts = path.split('/');
  return parts.length <= MAX_FLEET_DEPTH && parts.every((p) => FLEET_SEGMENT.test(p));
}

export interface GroupView extends DeviceGroup {
  readonly builtin: boolean;
  readonly members: number;
}

export interface DeviceService {
  create(tenant: string, id: string, attributes?: Record<string, string>, fleet?: string): Promise<Device>;
  get(tenant: string, id: string): Promise<Device>;
  find(tenant: string, id: string): Promise<Device | undefined>;
  list(
    tenant: string,
    opts?: { limit?: number; cursor?: string; fleet?: string },
  ): Promise<{ items: Device[]; nextCursor: string | null }>;
  disable(tenant: string, id: string): Promise<Device>;
  enable(tenant: string, id: string): Promise<Device>;
  delete(tenant: string, id: string): Promise<void>;
  /** Moves a device to another fleet ('' = none). */
  move(tenant: string, id: string, fleet: string): Promise<Device>;
  /** Merge patch: a null value removes the attribute. Dynamic groups are re-evaluated. */
  updateAttributes(tenant: string, id: string, patch: Record<string, string | null>): Promise<Device>;
  /** The device with the groups it is in and its capability fields, for the policy engine. */
  placement(
    tenant: string,
    id: string,
  ): Promise<
    { device: Device; groups: string[]; capabilities: Readonly<Record<string, string>> } | undefined
  >;
  /**
   * A new capability version was stored: dynamic groups are re-evaluated and the device's effective
   * policy recompiled (capability fields are policy conditions).
   */
  capabilitiesChanged(tenant: string, id: string): Promise<void>;
  scan(
    tenant: string,
    opts: { limit: number; afterId?: string; fleet?: string; subtree?: boolean; group?: string },
  ): Promise<{ device: Device; groups: string[]; capabilities: Readonly<Record<string, string>> }[]>;

  createFleet(tenant: string, path: string, description?: string): Promise<Fleet>;
  getFleet(tenant: string, path: string): Promise<Fleet & { devices: number; fleets: number }>;
  listFleets(
    tenant: string,
    opts?: { under?: string; limit?: number; cursor?: string },
  ): Promise<{ items: Fleet[]; nextCursor: string | null }>;
  /** Only an empty fleet (no devices, no sub-fleets) can be deleted; `inUse` vetoes (attached policies). */
  deleteFleet(tenant: string, path: string, inUse?: () => Promise<string | undefined>): Promise<void>;

  createGroup(
    tenant: string,
    input: { name: string; kind: GroupKind; query?: string; description?: string },
  ): Promise<GroupView>;
  getGroup(tenant: string, name: string): Promise<GroupView>;
  listGroups(tenant: string): Promise<GroupView[]>;
  updateGroup(
    tenant: string,
    name: string,
    input: { query?: string; description?: string },
  ): Promise<GroupView>;
  deleteGroup(tenant: string, name: string, inUse?: () => Promise<string | undefined>): Promise<void>;
  addToGroup(tenant: string, name: string, deviceIds: readonly string[]): Promise<string[]>;
  removeFromGroup(tenant: string, name: string, deviceIds: readonly string[]): Promise<string[]>;
  listMembers(
    tenant: string,
    name: string,
    opts?: { limit?: number; cursor?: string },
  ): Promise<{ items: string[]; nextCursor: string | null }>;
  onEvent(listener: (e: DeviceEvent) => void): () => void;
}

const ATTR_KEY = /^[A-Za-z][A-Za-z0-9_.-]{0,63}$/;

export function validateAttributes(attrs: Record<string, unknown>): Record<string, string> {
  const out: Record<string, string> = {};
  const errors: { path: string; message: string }[] = [];
  const entries = Object.entries(attrs);
  if (entries.length > 64) errors.push({ path: 'attributes', message: 'at most 64 attributes' });
  for (const [k, v] of entries) {
    if (!ATTR_KEY.test(k)) errors.push({ path: `attributes.${k}`, message: 'invalid attribute name' });
    else if (typeof v !== 'string' || v.length > 256)
      errors.push({ path: `attributes.${k}`, message: 'must be a string of at most 256 characters' });
    else out[k] = v;
  }
  if (errors.length > 0) throw new AppError('ERR_VALIDATION', 'Invalid device attributes', { errors });
  return out;
}

export function createDeviceService(deps: {
  store: DeviceStore;
  clock: Clock;
  capabilities?: CapabilityLookup;
}): DeviceService {
  const { store, clock } = deps;
  const capabilitiesOf = async (tenant: string, ids: readonly string[]) =>
    deps.capabilities && ids.length > 0 ? deps.capabilities(tenant, ids) : new Map();
  const listeners = new Set<(e: DeviceEvent) => void>();
  const emit = (e: DeviceEvent) => {
    for (const l of listeners) l(e);
  };
  const get = async (tenant: string, id: string) => {
    const d = await store.get(tenant, id);
    if (!d) throw new AppError('ERR_DEVICE_NOT_FOUND', `Device ${id} not found`);
    return d;
  };
  const setStatus = async (tenant: string, id: string, status: Device['status']) => {
    if (!(await store.setStatus(tenant, id, status, clock.now()))) {
      throw new AppError('ERR_DEVICE_NOT_FOUND', `Device ${id} not found`);
    }
    emit({ type: status === 'active' ? 'enabled' : 'disabled', tenant, deviceId: id });
    return get(tenant, id);
  };
  const requireFleet = async (tenant: string, path: string) => {
    if (path === '') return;
    if (!isValidFleetPath(path)) throw new AppError('ERR_FLEET_INVALID_PATH');
    if (!(await store.getFleet(tenant, path)))
      throw new AppError('ERR_FLEET_NOT_FOUND', `Fleet ${path} not found`);
  };
  const requireGroup = async (tenant: string, name: string): Promise<DeviceGroup> => {
    if (!GROUP_NAME.test(name)) throw new AppError('ERR_GROUP_INVALID_NAME');
    const g = await store.getGroup(tenant, name);
    if (g) return g;
    if (name === QUARANTINE) return builtinQuarantine(tenant);
    throw new AppError('ERR_GROUP_NOT_FOUND', `Group ${name} not found`);
  };
  const builtinQuarantine = (tenant: string): DeviceGroup => ({
    tenant,
    name: QUARANTINE,
    kind: 'static',
    query: null,
    description: 'Built in: members may only use their status and update topics.',
    createdAt: 0,
    updatedAt: 0,
  });
  const placementChanged = (tenant: string, reason: string, ids: readonly string[]) => {
    if (ids.length === 0) return;
    emit(
      ids.length > MAX_EVENT_IDS
        ? { type: 'placement', tenant, reason }
        : { type: 'placement', tenant, reason, deviceIds: [...ids] },
    );
  };

  // Dynamic groups of a tenant, parsed once; refreshed when a group changes.
  const dynamicCache = new Map<string, { name: string; query: Query }[]>();
  const dynamicGroups = async (tenant: string) => {
    let d = dynamicCache.get(tenant);
    if (!d) {
      d = (await store.listGroups(tenant, { kind: 'dynamic' })).flatMap((g) =>
        g.query === null ? [] : [{ name: g.name, query: parseQuery(g.query) }],
      );
      if (dynamicCache.size > 1000) dynamicCache.clear();
      dynamicCache.set(tenant, d);
    }
    return d;
  };
  /** Brings one device's dynamic memberships up to date; true when any changed. */
  const reevaluate = async (device: Device): Promise<boolean> => {
    const groups = await dynamicGroups(device.tenant);
    if (groups.length === 0) return false;
    const target = groups.some((g) => usesCapabilities(g.query))
      ? { ...device, capabilities: (await capabilitiesOf(device.tenant, [device.id])).get(device.id) }
      : device;
    const current = new Set((await store.groupsOf(device.tenant, [device.id])).get(device.id) ?? []);
    let changed = false;
    for (const g of groups) {
      const should = matchesQuery(g.query, target);
      if (should && !current.has(g.name))
        changed =
          (await store.addMembers(device.tenant, g.name, [device.id], clock.now())).length > 0 || changed;
      if (!should && current.has(g.name))
        changed = (await store.removeMembers(device.tenant, g.name, [device.id])).length > 0 || changed;
    }
    return changed;
  };
  /** Recomputes a dynamic group's members over every device of the tenant; returns those that changed. */
  const refill = async (tenant: string, name: string, query: Query | null): Promise<string[]> => {
    const before = new Set<string>();
    for (let after: string | undefined; ;) {
      const page = await store.listMembers(tenant, name, {
        limit: 5000,
        ...(after ? { afterId: after } : {}),
      });
      for (const id of page) before.add(id);
      if (page.length < 5000) break;
      after = page[page.length - 1];
    }
    const add: string[] = [];
    const keep = new Set<string>();
    if (query) {
      const withCaps = usesCapabilities(query);
      for (let after: string | undefined; ;) {
        const page = await store.scan(tenant, { limit: 2000, ...(after ? { afterId: after } : {}) });
        const caps = withCaps
          ? await capabilitiesOf(
              tenant,
              page.map((d) => d.id),
            )
          : undefined;
        for (const d of page) {
          if (!matchesQuery(query, caps ? { ...d, capabilities: caps.get(d.id) } : d)) continue;
          keep.add(d.id);
          if (!before.has(d.id)) add.push(d.id);
        }
        if (page.length < 2000) break;
        after = page[page.length - 1]?.id;
      }
    }
    const remove = [...before].filter((id) => !keep.has(id));
    if (add.length > 0) await store.addMembers(tenant, name, add, clock.now());
    if (remove.length > 0) await store.removeMembers(tenant, name, remove);
    return [...add, ...remove];
  };
  const groupView = async (g: DeviceGroup): Promise<GroupView> => ({
    ...g,
    builtin: g.name === QUARANTINE,
    members: await store.countMembers(g.tenant, g.name),
  });
  const page = <T>(items: T[], limit: number, key: (t: T) => string) => {
    const shown = items.slice(0, limit);
    const last = shown[shown.length - 1];
    return {
      items: shown,
      nextCursor: items.length > limit && last !== undefined ? encodeCursor({ k: key(last) }) : null,
    };
  };
  const pageLimit = (n: number | undefined) => Math.min(Math.max(n ?? 50, 1), 1000);
  const cursorKey = (c: string | undefined) =>
    c ? String(decodeCursor<{ k: string }>(c, ['k']).k) : undefined;

  return {
    async create(tenant, id, attributes = {}, fleet = '') {
      if (!isValidDeviceId(id)) throw new AppError('ERR_DEVICE_INVALID_ID');
      const attrs = validateAttributes(attributes);
      await requireFleet(tenant, fleet);
      const now = clock.now();
      const device: Device = {
        tenant,
        id,
        status: 'active',
        attributes: attrs,
        fleet,
        createdAt: now,
        updatedAt: now,
      };
      await store.insert(device);
      await reevaluate(device);
      emit({ type: 'created', tenant, deviceId: id });
      return device;
    },
    get,
    find: (tenant, id) => store.get(tenant, id),
    async list(tenant, opts = {}) {
      const limit = Math.min(Math.max(opts.limit ?? 50, 1), 1000);
      const after = opts.cursor
        ? decodeCursor<{ createdAt: number; id: string }>(opts.cursor, ['createdAt', 'id'])
        : undefined;
      if (opts.fleet !== undefined && opts.fleet !== '' && !isValidFleetPath(opts.fleet))
        throw new AppError('ERR_FLEET_INVALID_PATH');
      const items = await store.list(tenant, {
        limit: limit + 1,
        ...(after ? { after } : {}),
        ...(opts.fleet !== undefined ? { fleet: opts.fleet } : {}),
      });
      const page = items.slice(0, limit);
      const last = page[page.length - 1];
      return {
        items: page,
        nextCursor:
          items.length > limit && last ? encodeCursor({ createdAt: last.createdAt, id: last.id }) : null,
      };
    },
    disable: (tenant, id) => setStatus(tenant, id, 'disabled'),
    enable: (tenant, id) => setStatus(tenant, id, 'active'),
    async delete(tenant, id) {
      if (!(await store.delete(tenant, id)))
        throw new AppError('ERR_DEVICE_NOT_FOUND', `Device ${id} not found`);
      emit({ type: 'deleted', tenant, deviceId: id });
    },
    async move(tenant, id, fleet) {
      const d = await get(tenant, id);
      await requireFleet(tenant, fleet);
      if (d.fleet === fleet) return d;
      await store.setFleet(tenant, id, fleet, clock.now());
      const moved = await get(tenant, id);
      await reevaluate(moved);
      placementChanged(tenant, 'device.move', [id]);
      return moved;
    },
    async updateAttributes(tenant, id, patch) {
      const d = await get(tenant, id);
      const merged: Record<string, unknown> = { ...d.attributes };
      for (const [k, v] of Object.entries(patch)) {
        if (v === null) delete merged[k];
        else merged[k] = v;
      }
      await store.setAttributes(tenant, id, validateAttributes(merged), clock.now());
      const updated = await get(tenant, id);
      await reevaluate(updated);
      // Attributes are policy variables and conditions even when no group changed.
      placementChanged(tenant, 'device.update', [id]);
      return updated;
    },
    async placement(tenant, id) {
      const device = await store.get(tenant, id);
      if (!device) return undefined;
      return {
        device,
        groups: (await store.groupsOf(tenant, [id])).get(id) ?? [],
        capabilities: (await capabilitiesOf(tenant, [id])).get(id) ?? {},
      };
    },
    async capabilitiesChanged(tenant, id) {
      const device = await store.get(tenant, id);
      if (!device) return;
      await reevaluate(device);
      placementChanged(tenant, 'device.capabilities', [id]);
    },
    async scan(tenant, opts) {
      const devices = await store.scan(tenant, opts);
      const groups = await store.groupsOf(
        tenant,
        devices.map((d) => d.id),
      );
      const caps = await capabilitiesOf(
        tenant,
        devices.map((d) => d.id),
      );
      return devices.map((device) => ({
        device,
        groups: groups.get(device.id) ?? [],
        capabilities: caps.get(device.id) ?? {},
      }));
    },

    async createFleet(tenant, path, description = '') {
      if (!isValidFleetPath(path)) throw new AppError('ERR_FLEET_INVALID_PATH');
      const slash = path.lastIndexOf('/');
      const parent = slash < 0 ? '' : path.slice(0, slash);
      if (parent && !(await store.getFleet(tenant, parent)))
        throw new AppError('ERR_FLEET_PARENT_NOT_FOUND', `Create fleet ${parent} first`);
      const now = clock.now();
      const f: Fleet = { tenant, path, parent, description, createdAt: now, updatedAt: now };
      await store.insertFleet(f);
      return f;
    },
    async getFleet(tenant, path) {
      if (!isValidFleetPath(path)) throw new AppError('ERR_FLEET_INVALID_PATH');
      const f = await store.getFleet(tenant, path);
      if (!f) throw new AppError('ERR_FLEET_NOT_FOUND', `Fleet ${path} not found`);
      return { ...f, ...(await store.fleetUsage(tenant, path)) };
    },
    async listFleets(tenant, opts = {}) {
      if (opts.under !== undefined && !isValidFleetPath(opts.under))
        throw new AppError('ERR_FLEET_INVALID_PATH');
      const limit = pageLimit(opts.limit);
      const afterPath = cursorKey(opts.cursor);
      const items = await store.listFleets(tenant, {
        limit: limit + 1,
        ...(opts.under !== undefined ? { under: opts.under } : {}),
        ...(afterPath !== undefined ? { afterPath } : {}),
      });
      return page(items, limit, (f) => f.path);
    },
    async deleteFleet(tenant, path, inUse) {
      if (!isValidFleetPath(path)) throw new AppError('ERR_FLEET_INVALID_PATH');
      const found = await store.getFleet(tenant, path);
      if (!found) throw new AppError('ERR_FLEET_NOT_FOUND', `Fleet ${path} not found`);
      const f = { ...found, ...(await store.fleetUsage(tenant, path)) };
      if (f.devices > 0 || f.fleets > 0)
        throw new AppError(
          'ERR_FLEET_NOT_EMPTY',
          `Fleet ${path} has ${f.devices} device(s) and ${f.fleets} sub-fleet(s)`,
        );
      const why = await inUse?.();
      if (why) throw new AppError('ERR_FLEET_NOT_EMPTY', why);
      await store.deleteFleet(tenant, path);
    },

    async createGroup(tenant, input) {
      if (!GROUP_NAME.test(input.name)) throw new AppError('ERR_GROUP_INVALID_NAME');
      if (input.name === QUARANTINE) throw new AppError('ERR_GROUP_EXISTS', 'quarantine is built in');
      if (input.kind === 'dynamic' && input.query === undefined)
        throw new AppError('ERR_GROUP_QUERY_INVALID', 'A dynamic group needs a query');
      if (input.kind === 'static' && input.query !== undefined)
        throw new AppError('ERR_GROUP_QUERY_INVALID', 'A static group has no query');
      const query = input.query !== undefined ? parseQuery(input.query) : null;
      const now = clock.now();
      const g: DeviceGroup = {
        tenant,
        name: input.name,
        kind: input.kind,
        query: input.query ?? null,
        description: input.description ?? '',
        createdAt: now,
        updatedAt: now,
      };
      await store.insertGroup(g);
      dynamicCache.delete(tenant);
      if (query) placementChanged(tenant, 'group.create', await refill(tenant, g.name, query));
      return groupView(g);
    },
    getGroup: async (tenant, name) => groupView(await requireGroup(tenant, name)),
    async listGroups(tenant) {
      const groups = await store.listGroups(tenant);
      if (!groups.some((g) => g.name === QUARANTINE)) groups.unshift(builtinQuarantine(tenant));
      return Promise.all(groups.map(groupView));
    },
    async updateGroup(tenant, name, input) {
      const g = await requireGroup(tenant, name);
      if (input.query !== undefined && g.kind !== 'dynamic')
        throw new AppError('ERR_GROUP_QUERY_INVALID', `${name} is a static group: it has no query`);
      const query = input.query !== undefined ? parseQuery(input.query) : undefined;
      const next: DeviceGroup = {
        ...g,
        ...(input.query !== undefined ? { query: input.query } : {}),
        ...(input.description !== undefined ? { description: input.description } : {}),
        updatedAt: clock.now(),
      };
      if (name === QUARANTINE && !(await store.getGroup(tenant, name))) await store.insertGroup(next);
      else await store.updateGroup(next);
      dynamicCache.delete(tenant);
      if (query) placementChanged(tenant, 'group.update', await refill(tenant, name, query));
      return groupView(next);
    },
    async deleteGroup(tenant, name, inUse) {
      if (name === QUARANTINE) throw new AppError('ERR_GROUP_BUILTIN');
      await requireGroup(tenant, name);
      const why = await inUse?.();
      if (why) throw new AppError('ERR_GROUP_IN_USE', why);
      const members = await store.countMembers(tenant, name);
      await store.deleteGroup(tenant, name);
      dynamicCache.delete(tenant);
      if (members > 0) emit({ type: 'placement', tenant, reason: 'group.delete', group: name });
    },
    async addToGroup(tenant, name, ids) {
      const g = await requireGroup(tenant, name);
      if (g.kind === 'dynamic') throw new AppError('ERR_GROUP_DYNAMIC');
      for (const id of ids) await get(tenant, id);
      const added = await store.addMembers(tenant, name, ids, clock.now());
      placementChanged(tenant, name === QUARANTINE ? 'device.quarantine' : 'group.add', added);
      return added;
    },
    async removeFromGroup(tenant, name, ids) {
      const g = await requireGroup(tenant, name);
      if (g.kind === 'dynamic') throw new AppError('ERR_GROUP_DYNAMIC');
      const removed = await store.removeMembers(tenant, name, ids);
      placementChanged(tenant, name === QUARANTINE ? 'device.release' : 'group.remove', removed);
      return removed;
    },
    async listMembers(tenant, name, opts = {}) {
      await requireGroup(tenant, name);
      const limit = pageLimit(opts.limit);
      const afterId = cursorKey(opts.cursor);
      const items = await store.listMembers(tenant, name, {
        limit: limit + 1,
        ...(afterId !== undefined ? { afterId } : {}),
      });
      return page(items, limit, (id) => id);
    },
    onEvent(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
  };
}
