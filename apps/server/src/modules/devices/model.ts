export type DeviceStatus = 'active' | 'disabled';

export interface Device {
  readonly tenant: string;
  readonly id: string;
  readonly status: DeviceStatus;
  readonly attributes: Readonly<Record<string, string>>;
  /** Fleet path; '' when the device is in no fleet. */
  readonly fleet: string;
  readonly createdAt: number;
  readonly updatedAt: number;
}

/** Fleets nest by path: `plant-a/line-3/robots` is inside `plant-a/line-3`. */
export interface Fleet {
  readonly tenant: string;
  readonly path: string;
  /** '' for a top-level fleet. */
  readonly parent: string;
  readonly description: string;
  readonly createdAt: number;
  readonly updatedAt: number;
}

export type GroupKind = 'static' | 'dynamic';

export interface DeviceGroup {
  readonly tenant: string;
  readonly name: string;
  readonly kind: GroupKind;
  /** Dynamic groups: the query their members match (see query.ts). */
  readonly query: string | null;
  readonly description: string;
  readonly createdAt: number;
  readonly updatedAt: number;
}

export interface DeviceStore {
  insert(device: Device): Promise<void>;
  get(tenant: string, id: string): Promise<Device | undefined>;
  list(
    tenant: string,
    opts: { limit: number; after?: { createdAt: number; id: string }; fleet?: string },
  ): Promise<Device[]>;
  /** Keyset by id, for scans (dynamic groups, dry-run diffs). `fleet` with `subtree` includes sub-fleets. */
  scan(
    tenant: string,
    opts: { limit: number; afterId?: string; fleet?: string; subtree?: boolean; group?: string },
  ): Promise<Device[]>;
  setStatus(tenant: string, id: string, status: DeviceStatus, now: number): Promise<boolean>;
  setFleet(tenant: string, id: string, fleet: string, now: number): Promise<boolean>;
  setAttributes(
    tenant: string,
    id: string,
    attributes: Record<string, string>,
    now: number,
  ): Promise<boolean>;
  delete(tenant: string, id: string): Promise<boolean>;

  insertFleet(f: Fleet): Promise<void>;
  getFleet(tenant: string, path: string): Promise<Fleet | undefined>;
  listFleets(tenant: string, opts: { under?: string; limit: number; afterPath?: string }): Promise<Fleet[]>;
  /** Direct sub-fleets and devices directly in the fleet. */
  fleetUsage(tenant: string, path: string): Promise<{ fleets: number; devices: number }>;
  deleteFleet(tenant: string, path: string): Promise<boolean>;

  insertGroup(g: DeviceGroup): Promise<void>;
  getGroup(tenant: string, name: string): Promise<DeviceGroup | undefined>;
  listGroups(tenant: string, opts?: { kind?: GroupKind }): Promise<DeviceGroup[]>;
  updateGroup(g: DeviceGroup): Promise<boolean>;
  /** Deletes the group and its memberships. */
  deleteGroup(tenant: string, name: string): Promise<boolean>;
  groupsOf(tenant: string, deviceIds: readonly string[]): Promise<Map<string, string[]>>;
  /** Returns the ids that were not members before. */
  addMembers(tenant: string, group: string, deviceIds: readonly string[], now: number): Promise<string[]>;
  /** Returns the ids that were members. */
  removeMembers(tenant: string, group: string, deviceIds: readonly string[]): Promise<string[]>;
  listMembers(tenant: string, group: string, opts: { limit: number; afterId?: string }): Promise<string[]>;
  countMembers(tenant: string, group: string): Promise<number>;
}

export type DeviceEvent =
  | {
      type: 'disabled' | 'deleted' | 'enabled' | 'created';
      tenant: string;
      deviceId: string;
    }
  | {
      /** Fleet, groups or attributes changed: effective policies must be recomputed. */
      type: 'placement';
      tenant: string;
      reason: string;
      /** The devices concerned; `group`: every member of that group; neither: every device of the tenant. */
      deviceIds?: readonly string[];
      group?: string;
    };
