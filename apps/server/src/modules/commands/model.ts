// Commands, device twin and capability reports: what the platform says to a device over the connection
// the device opened, and what the device says about itself.

export type CommandStatus = 'succeeded' | 'failed' | 'timeout';

export interface CommandOutcome {
  readonly id: string;
  readonly status: CommandStatus;
  readonly result?: unknown;
  readonly error?: string;
}

export interface Twin {
  readonly desired: {
    readonly version: number;
    readonly state: Record<string, unknown>;
    readonly updatedAt: number | null;
  };
  readonly reported: {
    readonly state: Record<string, unknown>;
    readonly desiredVersion: number | null;
    readonly updatedAt: number;
  } | null;
}

export interface CapabilityVersion {
  readonly version: number;
  readonly reportedAt: number;
  readonly capabilities: Record<string, unknown>;
}

/** A message the platform sends to a device (broker.publish: delivered over the device's own connection). */
export interface OutboundMessage {
  readonly topic: string;
  readonly payload: Buffer;
  readonly qos: 0 | 1;
  readonly retain?: boolean;
  readonly properties?: {
    readonly correlationData?: Buffer;
    readonly responseTopic?: string;
    readonly messageExpiryInterval?: number;
    readonly contentType?: string;
  };
}

export interface TwinRow {
  desired: string;
  desiredVersion: number;
  desiredUpdatedAt: number | null;
  reported: string | null;
  reportedDesiredVersion: number | null;
  reportedUpdatedAt: number | null;
}

export interface CommandsStore {
  getTwin(tenant: string, deviceId: string): Promise<TwinRow | undefined>;
  /** Replaces the desired state; the new version, or undefined when `expectedVersion` is not the current one. */
  setDesired(
    tenant: string,
    deviceId: string,
    json: string,
    at: number,
    expectedVersion?: number,
  ): Promise<number | undefined>;
  setReported(
    tenant: string,
    deviceId: string,
    json: string,
    desiredVersion: number | null,
    at: number,
  ): Promise<void>;
  /** Stores a capability report unless it equals the latest one; returns the version in effect. */
  addCapabilities(
    tenant: string,
    deviceId: string,
    json: string,
    digest: string,
    at: number,
  ): Promise<{ version: number; changed: boolean }>;
  latestCapabilities(
    tenant: string,
    deviceId: string,
  ): Promise<{ version: number; json: string; reportedAt: number } | undefined>;
  /** The newest report (JSON) of each device that has one, by device id: campaigns and group queries. */
  latestCapabilitiesOf(tenant: string, deviceIds: readonly string[]): Promise<Map<string, string>>;
  /** Newest first. */
  listCapabilities(
    tenant: string,
    deviceId: string,
    opts: { limit: number; beforeVersion?: number },
  ): Promise<{ version: number; json: string; reportedAt: number }[]>;
  /** The device is gone: its twin and capability history go with it. */
  deleteDevice(tenant: string, deviceId: string): Promise<void>;
}
