export type DeviceStatus = 'active' | 'disabled';

export interface Device {
  readonly tenant: string;
  readonly id: string;
  readonly status: DeviceStatus;
  readonly attributes: Readonly<Record<string, string>>;
  readonly createdAt: number;
  readonly updatedAt: number;
}

export interface DeviceStore {
  insert(device: Device): Promise<void>;
  get(tenant: string, id: string): Promise<Device | undefined>;
  list(tenant: string, opts: { limit: number; after?: { createdAt: number; id: string } }): Promise<Device[]>;
  setStatus(tenant: string, id: string, status: DeviceStatus, now: number): Promise<boolean>;
  delete(tenant: string, id: string): Promise<boolean>;
}

export type DeviceEvent = {
  type: 'disabled' | 'deleted' | 'enabled' | 'created';
  tenant: string;
  deviceId: string;
};
