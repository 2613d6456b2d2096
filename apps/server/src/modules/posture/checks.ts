// What the producers observe, as pure functions: a device's capability report, a policy's lint
// findings, a device's tamper report (untrusted input, parsed strictly here).
import { isIP } from 'node:net';
import type { CapabilityReport, TamperReport } from '@bulwark/protocol';
import { AppError } from '../../kernel/index.ts';
import type { Observation, Severity } from './model.ts';

/** TLS versions a device may offer; anything older is a finding. */
const GOOD_TLS = new Set(['TLSv1.2', 'TLSv1.3']);
/** Key types below the platform's minimum (it signs only P-256, P-384, Ed25519 and RSA >= 2048). */
const WEAK_KEY = /^(rsa-?(512|768|1024|1536)|dsa.*|ec-?p?(160|192)|secp(160|192).*|p(160|192))$/i;
/** Where a private key is held in hardware, or at least outside a plain file. */
const SOFTWARE_KEY_STORAGE = new Set(['file', 'filesystem', 'software', 'memory']);

function isLoopback(address: string): boolean {
  const a = address.replace(/^\[|\]$/g, '').replace(/%.*$/, '');
  if (a === 'localhost') return true;
  if (isIP(a) === 4) return a.startsWith('127.');
  if (isIP(a) === 6) return a === '::1' || /^::ffff:127\./i.test(a);
  return false;
}

/** Findings a capability report shows; each device's report replaces what the previous one showed. */
export function capabilityObservations(deviceId: string, r: CapabilityReport): Observation[] {
  const out: Observation[] = [];
  const base = `device:${deviceId}`;
  // Devices only ever dial out: a socket reachable from the network is an open door. A loopback-only
  // listener is local inter-process traffic, still worth knowing about.
  for (const p of r.listeningPorts ?? []) {
    const loopback = isLoopback(p.address);
    out.push({
      subject: `${base}/listening/${p.protocol}/${p.address}/${p.port}`,
      kind: 'listening-port',
      severity: loopback ? 'low' : 'high',
      summary: `${deviceId} listens on ${p.protocol} ${p.address}:${p.port}${loopback ? ' (loopback)' : ''}`,
      details: { protocol: p.protocol, address: p.address, port: p.port, loopback },
    });
  }
  if (r.tls?.versions) {
    const weak = r.tls.versions.filter((v) => !GOOD_TLS.has(v));
    if (weak.length > 0)
      out.push({
        subject: `${base}/weak-tls-version`,
        kind: 'weak-tls-version',
        severity: 'medium',
        summary: `${deviceId} offers ${weak.join(', ')}`,
        details: { versions: weak },
      });
  }
  if (r.tls?.keyTypes) {
    const weak = r.tls.keyTypes.filter((k) => WEAK_KEY.test(k));
    if (weak.length > 0)
      out.push({
        subject: `${base}/weak-key-type`,
        kind: 'weak-key-type',
        severity: 'medium',
        summary: `${deviceId} supports weak key types ${weak.join(', ')}`,
        details: { keyTypes: weak },
      });
  }
  const missing = (capability: string, severity: Severity, why: string) =>
    out.push({
      subject: `${base}/missing/${capability}`,
      kind: 'missing-capability',
      severity,
      summary: `${deviceId} does not report ${capability}`,
      details: { capability, why },
    });
  if (r.keyStorage === undefined) missing('keyStorage', 'low', 'where the private key is kept is unknown');
  else if (SOFTWARE_KEY_STORAGE.has(r.keyStorage.toLowerCase()))
    out.push({
      subject: `${base}/key-in-software`,
      kind: 'key-in-software',
      severity: 'low',
      summary: `${deviceId} keeps its private key in ${r.keyStorage}, not in a TPM or secure element`,
      details: { keyStorage: r.keyStorage },
    });
  if (r.updateMethod === undefined) missing('updateMethod', 'low', 'whether it can be updated is unknown');
  else if (r.updateMethod.toLowerCase() === 'none')
    out.push({
      subject: `${base}/no-update-method`,
      kind: 'no-update-method',
      severity: 'medium',
      summary: `${deviceId} cannot be updated`,
      details: { updateMethod: r.updateMethod },
    });
  if (r.tls === undefined) missing('tls', 'low', 'which TLS versions and key types it supports is unknown');
  return out;
}

/** The shape of the policy linter's findings (modules/policy lint.ts). */
export interface LintLike {
  readonly rule: string;
  readonly severity: 'high' | 'medium' | 'low';
  readonly statement: number;
  readonly sid: string | undefined;
  readonly message: string;
}

/** Findings of a policy just written: one per lint finding, keyed by statement (sid when it has one). */
export function policyObservations(policyId: string, lint: readonly LintLike[]): Observation[] {
  return lint.map((l) => ({
    subject: `policy:${policyId}/${l.sid !== undefined ? `sid:${l.sid}` : `statement:${l.statement}`}/${l.rule}`,
    kind: 'policy-lint' as const,
    severity: l.severity,
    summary: `policy ${policyId}: ${l.message}`,
    details: {
      policyId,
      rule: l.rule,
      statement: l.statement,
      ...(l.sid !== undefined ? { sid: l.sid } : {}),
    },
  }));
}

export const TAMPER_MAX_BYTES = 4096;
const TAMPER_KIND = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/;

/** Parses a device's tamper report (untrusted): the exact shape, nothing more. */
export function parseTamperReport(payload: Buffer): TamperReport {
  const bad = (why: string) => new AppError('ERR_POSTURE_TAMPER_INVALID', undefined, { detail: why });
  if (payload.length > TAMPER_MAX_BYTES) throw bad(`larger than ${TAMPER_MAX_BYTES} bytes`);
  let v: unknown;
  try {
    v = JSON.parse(payload.toString('utf8'));
  } catch {
    throw bad('not JSON');
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw bad('not an object');
  const o = v as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!['kind', 'detail', 'at'].includes(k)) throw bad(`unknown field ${k}`);
  if (typeof o.kind !== 'string' || !TAMPER_KIND.test(o.kind)) throw bad('kind');
  if (o.detail !== undefined && (typeof o.detail !== 'string' || o.detail.length > 512)) throw bad('detail');
  if (
    o.at !== undefined &&
    (typeof o.at !== 'string' || !ISO_TIME.test(o.at) || Number.isNaN(Date.parse(o.at)))
  )
    throw bad('at');
  return {
    kind: o.kind,
    ...(o.detail !== undefined ? { detail: o.detail as string } : {}),
    ...(o.at !== undefined ? { at: o.at as string } : {}),
  };
}

export function tamperObservation(deviceId: string, r: TamperReport): Observation {
  return {
    subject: `tamper:${deviceId}/${r.kind}`,
    kind: 'tamper',
    severity: 'critical',
    summary: `${deviceId} reported tampering: ${r.kind}`,
    details: {
      tamper: r.kind,
      ...(r.detail !== undefined ? { detail: r.detail } : {}),
      ...(r.at !== undefined ? { reportedAt: r.at } : {}),
    },
  };
}
