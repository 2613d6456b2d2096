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
  commandResults: (deviceId: string): string => `devices/${deviceId}/commands/result`,
  status: (deviceId: string): string => `devices/${deviceId}/status`,
} as const;

export type ParsedDeviceTopic =
  | { kind: 'telemetry'; deviceId: string; stream: string | undefined }
  | { kind: 'other'; deviceId: string; rest: string };

const STREAM_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

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
