// A capability report flattened into `cap.<field>` strings: what dynamic group queries and policy
// conditions see. Lists are comma-separated (the `contains` operator of group queries looks for an item);
// `cap.listeningPorts` is the number of listening sockets, `cap.listeningPorts.ports` their port numbers.
import type { CapabilityReport } from './topics.ts';

/** Every field the flattening can produce (alias `cap.update.method` = `cap.updateMethod`). */
export const CAPABILITY_FIELDS = [
  'cap.hardware.model',
  'cap.hardware.revision',
  'cap.firmware.version',
  'cap.sdk.name',
  'cap.sdk.version',
  'cap.updateMethod',
  'cap.update.method',
  'cap.keyStorage',
  'cap.tls.versions',
  'cap.tls.keyTypes',
  'cap.listeningPorts',
  'cap.listeningPorts.ports',
  'cap.software',
] as const;

export type CapabilityField = (typeof CAPABILITY_FIELDS)[number];

export function isCapabilityField(name: string): name is CapabilityField {
  return (CAPABILITY_FIELDS as readonly string[]).includes(name);
}

const text = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
const list = (v: unknown): string | undefined =>
  Array.isArray(v) ? v.filter((s): s is string => typeof s === 'string').join(',') : undefined;

/** The `cap.*` fields of a (validated) report; a field the report lacks is absent. */
export function capabilityFields(report: CapabilityReport | Record<string, unknown>): Record<string, string> {
  const r = report as CapabilityReport;
  const out: Record<string, string> = {};
  const set = (k: CapabilityField, v: string | undefined) => {
    if (v !== undefined) out[k] = v;
  };
  set('cap.hardware.model', text(r.hardware?.model));
  set('cap.hardware.revision', text(r.hardware?.revision));
  set('cap.firmware.version', text(r.firmware?.version));
  set('cap.sdk.name', text(r.sdk?.name));
  set('cap.sdk.version', text(r.sdk?.version));
  set('cap.updateMethod', text(r.updateMethod));
  set('cap.update.method', text(r.updateMethod));
  set('cap.keyStorage', text(r.keyStorage));
  set('cap.tls.versions', list(r.tls?.versions));
  set('cap.tls.keyTypes', list(r.tls?.keyTypes));
  if (Array.isArray(r.listeningPorts)) {
    set('cap.listeningPorts', String(r.listeningPorts.length));
    set('cap.listeningPorts.ports', [...new Set(r.listeningPorts.map((p) => String(p.port)))].join(','));
  }
  if (Array.isArray(r.software)) set('cap.software', list(r.software.map((s) => s.name)));
  return out;
}
