import { isValidDeviceId } from '@bulwark/protocol';
import { AppError, decodeCursor, encodeCursor, type Clock } from '../../kernel/index.ts';

import type { Device, DeviceEvent, DeviceStore } from './model.ts';

export interface DeviceService {
  create(tenant: string, id: string, attributes?: Record<string, string>): Promise<Device>;
  get(tenant: string, id: string): Promise<Device>;
  find(tenant: string, id: string): Promise<Device | undefined>;
  list(
    tenant: string,
    opts?: { limit?: number; cursor?: string },
  ): Promise<{ items: Device[]; nextCursor: string | null }>;
  disable(tenant: string, id: string): Promise<Device>;
  enable(tenant: string, id: string): Promise<Device>;
  delete(tenant: string, id: string): Promise<void>;
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

export function createDeviceService(deps: { store: DeviceStore; clock: Clock }): DeviceService {
  const { store, clock } = deps;
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
  return {
    async create(tenant, id, attributes = {}) {
      if (!isValidDeviceId(id)) throw new AppError('ERR_DEVICE_INVALID_ID');
      const now = clock.now();
      const device: Device = {
        tenant,
        id,
        status: 'active',
        attributes: validateAttributes(attributes),
        createdAt: now,
        updatedAt: now,
      };
      await store.insert(device);
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
      const items = await store.list(tenant, { limit: limit + 1, ...(after ? { after } : {}) });
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
    onEvent(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
  };
}
