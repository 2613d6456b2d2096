// The real platform (apps/server/src/main.ts) as a child process on the broker core, with a fresh data
// directory, and devices enrolled through its REST API the way `bulwark device create` does it.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeCsr } from './certs.ts';
import type { ClientSpec, Target } from './generator-protocol.ts';
import { lineHub, memory, sleep, spawnPinned, waitForLine } from './proc.ts';
import { CLIENT_GROUPS } from './brokers.ts';

const MAIN = fileURLToPath(new URL('../../apps/server/src/main.ts', import.meta.url));

export interface RunningPlatform {
  pid: number;
  label: string;
  dataDir: string;
  httpPort: number;
  target: Target;
  rssKB(): number;
  api<T>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T }>;
  stop(): Promise<void>;
}

export async function startPlatform(
  dataDir: string,
  cpu: number | undefined,
  /** More BULWARK_* settings, e.g. BULWARK_DATABASE_URL. */
  settings: Record<string, string> = {},
  /** Write a --cpu-prof profile of the platform there (bench --profile). */
  profileDir?: string,
): Promise<RunningPlatform> {
  const env: NodeJS.ProcessEnv = {};
  // Unknown BULWARK_* variables are a start-up error: pass only ours.
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('BULWARK_')) env[k] = v;
  Object.assign(env, {
    BULWARK_DATA_DIR: dataDir,
    BULWARK_HTTP_PORT: '0',
    BULWARK_MQTT_PORT: '0',
    BULWARK_HTTP_HOST: '127.0.0.1',
    BULWARK_MQTT_HOST: '127.0.0.1',
    BULWARK_HOSTNAMES: 'localhost,127.0.0.1',
    BULWARK_LOG_LEVEL: 'error',
    ...settings,
  });
  const hub = lineHub();
  let httpPort = 0;
  hub.on((l) => {
    const m = /API\s+https:\/\/\S+?:(\d+)\/api\/v1/.exec(l);
    if (m) httpPort = Number(m[1]);
  });
  // As `npm start` runs it (package.json): V8's young generation capped at 8 MB per semi-space.
  const args = ['--max-semi-space-size=8', MAIN];
  if (profileDir) {
    mkdirSync(profileDir, { recursive: true });
    args.unshift('--cpu-prof', `--cpu-prof-dir=${profileDir}`);
  }
  const child = spawnPinned('platform', process.execPath, args, { cpu, env, onLine: hub.emit });
  const m = await waitForLine(child, /MQTT\s+mqtts:\/\/\S+?:(\d+)/, 90_000, hub);
  const mqttPort = Number(m[1]);
  if (!httpPort) throw new Error(`platform: no API line in its output\n${child.tail()}`);
  const caFile = join(dataDir, 'tls', 'ca.crt');
  const ca = readFileSync(caFile, 'utf8');
  const token = readFileSync(join(dataDir, 'secrets', 'initial-admin-token'), 'utf8').trim();
  const agent = new Agent({ keepAlive: true, maxSockets: 8, ca, servername: 'localhost' });
  const api = <T>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> =>
    new Promise((resolve, reject) => {
      const payload = body === undefined ? undefined : JSON.stringify(body);
      const req = request(
        {
          host: '127.0.0.1',
          port: httpPort,
          path,
          method,
          agent,
          servername: 'localhost',
          headers: {
            authorization: `Bearer ${token}`,
            ...(payload !== undefined ? { 'content-type': 'application/json' } : {}),
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            let parsed: unknown = text;
            try {
              parsed = text ? JSON.parse(text) : undefined;
            } catch {
              // not JSON
            }
            resolve({ status: res.statusCode ?? 0, body: parsed as T });
          });
        },
      );
      req.setTimeout(30_000, () => req.destroy(new Error(`${method} ${path}: no answer within 30 s`)));
      req.on('error', reject);
      req.end(payload);
    });
  return {
    pid: child.pid,
    label: `Bulwark platform (apps/server: policy check, SQLite group commit, PUBACK after commit)`,
    dataDir,
    httpPort,
    target: {
      host: '127.0.0.1',
      port: mqttPort,
      ca: caFile,
      servername: 'localhost',
      ecdhCurve: CLIENT_GROUPS,
    },
    rssKB: () => memory(child.pid).rssKB,
    api,
    async stop() {
      agent.destroy();
      await child.stop(profileDir ? 30_000 : 15_000);
    },
  };
}

async function apiRetry<T>(
  p: RunningPlatform,
  method: string,
  path: string,
  body: unknown,
  want: number,
): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    const r = await p.api<T>(method, path, body);
    if (r.status === want) return r.body;
    if (r.status === 429 && attempt < 10) {
      await sleep(1000);
      continue;
    }
    throw new Error(`${method} ${path}: ${r.status} ${JSON.stringify(r.body).slice(0, 300)}`);
  }
}

/** Registers each device, has the platform sign a CSR made here, and writes key and chain files. */
export async function enrollDevices(
  p: RunningPlatform,
  ids: readonly string[],
  dir: string,
  concurrency = 8,
): Promise<ClientSpec[]> {
  const out: ClientSpec[] = new Array<ClientSpec>(ids.length);
  let next = 0;
  const worker = async () => {
    while (next < ids.length) {
      const i = next++;
      const id = ids[i]!;
      await apiRetry(p, 'POST', '/api/v1/devices', { id }, 201);
      const { keyPem, csrPem } = await makeCsr(id);
      const issued = await apiRetry<{ chain: string }>(
        p,
        'POST',
        `/api/v1/devices/${encodeURIComponent(id)}/certificates`,
        { csr: csrPem },
        201,
      );
      const key = join(dir, `${id}.key`);
      const cert = join(dir, `${id}.chain.crt`);
      writeFileSync(key, keyPem, { mode: 0o600 });
      writeFileSync(cert, issued.chain);
      out[i] = { clientId: id, cert, key, topic: `devices/${id}/telemetry` };
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return out;
}

/** Telemetry rows stored for a device (paged through the API). */
export async function countTelemetry(p: RunningPlatform, id: string): Promise<number> {
  let n = 0;
  let cursor: string | null = null;
  for (let pages = 0; pages < 1000; pages++) {
    const q: string = `limit=1000${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
    const body: { items: unknown[]; nextCursor: string | null } = await apiRetry(
      p,
      'GET',
      `/api/v1/devices/${encodeURIComponent(id)}/telemetry?${q}`,
      undefined,
      200,
    );
    n += body.items.length;
    cursor = body.nextCursor;
    if (!cursor) break;
  }
  return n;
}
