// Helpers for the OTA tests: offline TUF keys held by "the operator", signing through the API as
// `bulwark release sign` does, artifact upload, and a fake installer for simulated devices.
import { createHash, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { request } from 'node:https';
import type { OtaInstaller, OtaMessaging, OtaTarget } from '@bulwark/device';
import type { Platform } from '../../../../test/support/platform.ts';

export interface OfflineKey {
  key: KeyObject;
  publicHex: string;
  keyId: string;
}

function canonicalKeyJson(hex: string): string {
  // Canonical JSON of {keytype, keyval: {public}, scheme} (keys sorted).
  return `{"keytype":"ed25519","keyval":{"public":"${hex}"},"scheme":"ed25519"}`;
}

export function offlineKey(): OfflineKey {
  const { privateKey } = generateKeyPairSync('ed25519');
  const jwk = privateKey.export({ format: 'jwk' });
  const publicHex = Buffer.from(String(jwk.x), 'base64url').toString('hex');
  return {
    key: privateKey,
    publicHex,
    keyId: createHash('sha256').update(canonicalKeyJson(publicHex)).digest('hex'),
  };
}

interface Pending {
  role: 'root' | 'targets';
  version: number;
  signed: unknown;
  digest: string;
  keyIds: string[];
  threshold: number;
  changes?: { added: string[]; removed: string[] };
}

/** Canonical JSON (TUF / OLPC): sorted keys, no whitespace; what the offline keys sign. */
export function canonicalJson(v: unknown): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v);
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  const o = v as Record<string, unknown>;
  return `{${Object.keys(o)
    .sort()
    .map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`)
    .join(',')}}`;
}

export async function pending(p: Platform, role: 'root' | 'targets'): Promise<Pending | undefined> {
  const r = await p.api<{ items: Pending[] }>('GET', '/api/v1/ota/repository/pending');
  if (r.status !== 200) throw new Error(`pending: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body.items.find((i) => i.role === role);
}

export async function signPending(p: Platform, role: 'root' | 'targets', keys: readonly OfflineKey[]) {
  const draft = await pending(p, role);
  if (!draft) throw new Error(`nothing to sign for ${role}`);
  const bytes = Buffer.from(canonicalJson(draft.signed));
  return p.api<{ published: boolean; version: number }>('POST', '/api/v1/ota/repository/signatures', {
    role,
    digest: draft.digest,
    signatures: keys.map((k) => ({ keyid: k.keyId, sig: sign(null, bytes, k.key).toString('hex') })),
  });
}

/** First root (offline root and targets keys) signed and published, then the empty first targets. */
export async function initRepository(p: Platform, keys: { root: OfflineKey; targets: OfflineKey }) {
  const draft = await p.api('POST', '/api/v1/ota/repository/root', {
    rootKeys: [keys.root.publicHex],
    targetsKeys: [keys.targets.publicHex],
  });
  if (draft.status !== 201) throw new Error(`root draft: ${draft.status} ${JSON.stringify(draft.body)}`);
  const root = await signPending(p, 'root', [keys.root]);
  if (root.status !== 200 || !root.body.published) throw new Error(`root: ${JSON.stringify(root.body)}`);
  const targets = await signPending(p, 'targets', [keys.targets]);
  if (targets.status !== 200 || !targets.body.published)
    throw new Error(`targets: ${JSON.stringify(targets.body)}`);
}

export function uploadArtifact(
  p: Platform,
  body: Buffer | AsyncIterable<Buffer>,
  opts: { contentType?: string; token?: string } = {},
): Promise<{ status: number; body: { sha256?: string; size?: number; code?: string } }> {
  return new Promise((resolve, reject) => {
    const req = request(
      new URL('/api/v1/artifacts', p.url),
      {
        method: 'POST',
        ca: p.ca,
        headers: {
          authorization: `Bearer ${opts.token ?? p.token}`,
          'content-type': opts.contentType ?? 'application/octet-stream',
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          resolve({ status: res.statusCode ?? 0, body: text ? JSON.parse(text) : {} });
        });
      },
    );
    req.on('error', reject);
    if (Buffer.isBuffer(body)) req.end(body);
    else
      void (async () => {
        try {
          for await (const chunk of body) {
            if (!req.write(chunk)) await new Promise<void>((r) => req.once('drain', () => r()));
          }
          req.end();
        } catch (err) {
          req.destroy(err as Error);
        }
      })();
  });
}

export interface ReleaseSpec {
  name: string;
  version: string;
  hardware: string[];
  bytes: Buffer;
  allowDowngrade?: boolean;
  sbom?: Record<string, unknown>;
}

/** Uploads, creates and signs (offline targets key) a release; returns its id. */
export async function release(p: Platform, spec: ReleaseSpec, targetsKey: OfflineKey): Promise<string> {
  const up = await uploadArtifact(p, spec.bytes);
  if (up.status !== 201) throw new Error(`upload: ${up.status} ${JSON.stringify(up.body)}`);
  const r = await p.api<{ id: string; state: string }>('POST', '/api/v1/releases', {
    name: spec.name,
    version: spec.version,
    artifact: up.body.sha256,
    hardware: spec.hardware,
    ...(spec.allowDowngrade ? { allowDowngrade: true } : {}),
    ...(spec.sbom ? { sbom: spec.sbom } : {}),
  });
  if (r.status !== 201) throw new Error(`release: ${r.status} ${JSON.stringify(r.body)}`);
  const s = await signPending(p, 'targets', [targetsKey]);
  if (s.status !== 200 || !s.body.published) throw new Error(`sign: ${s.status} ${JSON.stringify(s.body)}`);
  return r.body.id;
}

/** Messaging that records what the agent publishes and lets a test deliver notices. */
export function recordingMessaging(): OtaMessaging & {
  published: { topic: string; payload: unknown }[];
  deliver(payload: unknown): void;
} {
  const handlers: ((b: Buffer) => void)[] = [];
  const published: { topic: string; payload: unknown }[] = [];
  return {
    published,
    async subscribe(_topic, onMessage) {
      handlers.push(onMessage);
    },
    async publish(topic, payload) {
      published.push({ topic, payload: JSON.parse(payload.toString('utf8')) });
    },
    deliver(payload) {
      for (const h of handlers) h(Buffer.from(JSON.stringify(payload)));
    },
  };
}

/** A simulated device's installer: "flashes" the file, reboots into it, can be told to fail. */
export function fakeInstaller(
  initial: string | undefined,
  behaviour: { failInstall?: string; bootInto?: string; health?: string } = {},
): OtaInstaller & { installed: Buffer | undefined; current: string | undefined; log: string[] } {
  const state = {
    installed: undefined as Buffer | undefined,
    current: initial,
    pending: undefined as string | undefined,
    previous: undefined as string | undefined,
    log: [] as string[],
  };
  return {
    get installed() {
      return state.installed;
    },
    get current() {
      return state.current;
    },
    log: state.log,
    version: () => state.current,
    async install(file: string, target: OtaTarget) {
      state.log.push(`install ${target.version}`);
      if (behaviour.failInstall) throw new Error(behaviour.failInstall);
      state.installed = await readFile(file);
      state.pending = target.version;
    },
    async reboot() {
      state.log.push('reboot');
      state.previous = state.current;
      state.current = behaviour.bootInto ?? state.pending;
    },
    async health() {
      return behaviour.health ?? 'ok';
    },
    async rollback(version: string | undefined) {
      state.log.push(`rollback ${version ?? ''}`);
      state.current = version ?? state.previous;
    },
  };
}
