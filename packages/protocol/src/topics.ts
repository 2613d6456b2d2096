// Topic grammar shared by the server, the device SDK and the CLI.
// A device lives in its own namespace: devices/{deviceId}/...

export const DEVICE_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;

export function isValidDeviceId(id: string): boolean {
  return DEVICE_ID_PATTERN.test(id);
}

export const topics = {
  telemetry: (deviceId: string, stream?: string): string =>
    stream === undefined ? `devices/${deviceId}/telemetry` : `devices/${deviceId}/telemetry/${stream}`,
  commands: (deviceId: string): string => `devices/${deviceId}/commands`,
  /** Where the platform sends command `name` (payload: CommandRequest). */
  command: (deviceId: string, name: string): string => `devices/${deviceId}/commands/${name}`,
  /** The filter a device subscribes to for its commands; `commands/result` is its own reply topic. */
  commandFilter: (deviceId: string): string => `devices/${deviceId}/commands/#`,
  commandResults: (deviceId: string): string => `devices/${deviceId}/commands/result`,
  /** Retained, platform to device: TwinDesiredMessage. */
  twinDesired: (deviceId: string): string => `devices/${deviceId}/twin/desired`,
  /** Device to platform: TwinReportedMessage. */
  twinReported: (deviceId: string): string => `devices/${deviceId}/twin/reported`,
  /** Device to platform: CapabilityReport. */
  capabilities: (deviceId: string): string => `devices/${deviceId}/capabilities`,
  status: (deviceId: string): string => `devices/${deviceId}/status`,
  /** Retained, platform to device: OtaNotice (what to install, roll back or stop). */
  otaNotify: (deviceId: string): string => `devices/${deviceId}/ota/notify`,
  /** Device to platform: OtaStatusReport (progress of an update). */
  otaStatus: (deviceId: string): string => `devices/${deviceId}/ota/status`,
  /** Device to platform: TamperReport (the device noticed physical or software tampering). */
  tamper: (deviceId: string): string => `devices/${deviceId}/events/tamper`,
} as const;

export type ParsedDeviceTopic =
  | { kind: 'telemetry'; deviceId: string; stream: string | undefined }
  | { kind: 'command'; deviceId: string; name: string }
  | { kind: 'command-result'; deviceId: string }
  | { kind: 'twin-desired'; deviceId: string }
  | { kind: 'twin-reported'; deviceId: string }
  | { kind: 'capabilities'; deviceId: string }
  | { kind: 'tamper'; deviceId: string }
  | { kind: 'other'; deviceId: string; rest: string };

const STREAM_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
/** Command names: one topic level; `result` is reserved for replies. */
export const COMMAND_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export function isValidCommandName(name: string): boolean {
  return COMMAND_NAME_PATTERN.test(name) && name !== 'result';
}

/** A command as the platform publishes it on `devices/{id}/commands/{name}` (JSON, QoS 1). */
export interface CommandRequest {
  /** Correlation id; the reply carries it back (also sent as MQTT 5 Correlation Data). */
  id: string;
  name: string;
  payload?: unknown;
  /** Epoch ms after which the platform no longer waits for the reply. */
  expiresAt?: number;
}

/** A device's reply on `devices/{id}/commands/result`. */
export interface CommandResult {
  id: string;
  status: 'succeeded' | 'failed';
  result?: unknown;
  /** Why it failed, for people; no secrets. */
  error?: string;
}

/** Retained on `devices/{id}/twin/desired`: the whole desired state and its version (1, 2, ...). */
export interface TwinDesiredMessage {
  version: number;
  state: Record<string, unknown>;
}

/** On `devices/{id}/twin/reported`: the device's whole reported state, and the desired version it applied. */
export interface TwinReportedMessage {
  state: Record<string, unknown>;
  desiredVersion?: number;
}

/** What a device reports about itself on `devices/{id}/capabilities` (all fields optional). */
export interface CapabilityReport {
  hardware?: { model?: string; revision?: string; serialNumber?: string };
  firmware?: { version?: string };
  software?: { name?: string; version?: string }[];
  /** How the device installs updates, e.g. `ab-partition`, `package`, `container`, `none`. */
  updateMethod?: string;
  /** Where the private key lives, e.g. `file`, `tpm`, `secure-element`. */
  keyStorage?: string;
  tls?: { versions?: string[]; keyTypes?: string[] };
  /** Sockets the device listens on (read from the OS); a device that only dials out has none. */
  listeningPorts?: { protocol: 'tcp' | 'tcp6' | 'udp' | 'udp6'; address: string; port: number }[];
  /** CycloneDX JSON SBOM. */
  sbom?: Record<string, unknown>;
  sdk?: { name: string; version: string };
}

/**
 * A device's report on `devices/{id}/events/tamper` (JSON, QoS 1): it noticed tampering, e.g. its
 * enclosure opened, a debug port used, its secure boot chain failed. The platform records a posture
 * finding; the device cannot choose the finding's severity.
 */
export interface TamperReport {
  /** What happened, 1-64 of `A-Za-z0-9._-`, e.g. `enclosure-opened`, `debug-port`, `secure-boot`. */
  kind: string;
  /** For people, at most 512 characters; no secrets. */
  detail?: string;
  /** When the device noticed it (ISO 8601); the platform keeps its own receive time too. */
  at?: string;
}

/**
 * Retained on `devices/{id}/ota/notify` (QoS 1). Only a hint: the device installs a target only after
 * verifying it against the signed TUF metadata of its repository, whatever the notice says.
 */
export interface OtaNotice {
  campaign: string;
  /** install: fetch, verify and install `target`; rollback: go back to the previous version; cancel: stop. */
  action: 'install' | 'rollback' | 'cancel';
  /** TUF target path, e.g. `sensor-fw/1.4.0`. */
  target?: string;
  version?: string;
}

export const OTA_STATES = [
  'downloading',
  'installing',
  'rebooting',
  'succeeded',
  'failed',
  'rolled-back',
] as const;
export type OtaState = (typeof OTA_STATES)[number];

/** A device's report on `devices/{id}/ota/status`. */
export interface OtaStatusReport {
  campaign: string;
  state: OtaState;
  /** Download progress, 0-100. */
  progress?: number;
  /** Why it failed, for people; no secrets. */
  reason?: string;
  /** The version running now (after a reboot). */
  version?: string;
  /** Health after the reboot, e.g. `ok`, `degraded`. */
  health?: string;
}

/** Parses `devices/{id}/...`; returns undefined for topics outside the device namespace. */
export function parseDeviceTopic(topic: string): ParsedDeviceTopic | undefined {
  if (!topic.startsWith('devices/')) return undefined;
  const rest = topic.slice(8);
  const slash = rest.indexOf('/');
  if (slash <= 0) return undefined;
  const deviceId = rest.slice(0, slash);
  if (!isValidDeviceId(deviceId)) return undefined;
  const tail = rest.slice(slash + 1);
  if (tail === 'telemetry') return { kind: 'telemetry', deviceId, stream: undefined };
  if (tail.startsWith('telemetry/')) {
    const stream = tail.slice(10);
    if (STREAM_PATTERN.test(stream)) return { kind: 'telemetry', deviceId, stream };
    return undefined;
  }
  if (tail === 'commands/result') return { kind: 'command-result', deviceId };
  if (tail.startsWith('commands/')) {
    const name = tail.slice(9);
    if (isValidCommandName(name)) return { kind: 'command', deviceId, name };
  }
  if (tail === 'twin/desired') return { kind: 'twin-desired', deviceId };
  if (tail === 'twin/reported') return { kind: 'twin-reported', deviceId };
  if (tail === 'capabilities') return { kind: 'capabilities', deviceId };
  if (tail === 'events/tamper') return { kind: 'tamper', deviceId };
  return { kind: 'other', deviceId, rest: tail };
}

/** URI placed in a device certificate's subjectAltName: urn:bulwark:{tenant}:device:{deviceId}. */
export function deviceUri(tenant: string, deviceId: string): string {
  return `urn:bulwark:${tenant}:device:${deviceId}`;
}

export function parseDeviceUri(uri: string): { tenant: string; deviceId: string } | undefined {
  const m = /^urn:bulwark:([a-z0-9][a-z0-9-]{0,62}):device:(.+)$/.exec(uri);
  if (!m || m[1] === undefined || m[2] === undefined || !isValidDeviceId(m[2])) return undefined;
  return { tenant: m[1], deviceId: m[2] };
}
