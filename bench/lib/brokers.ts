// Starts the two brokers under comparison, each a fresh process pinned to the broker core, listening
// on a free loopback port with mutual TLS 1.3 and the same test PKI.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { CertSet } from './certs.ts';
import { freePort, isListening, lineHub, memory, sleep, spawnPinned, waitForLine } from './proc.ts';
import type { BrokerKind, RunningBroker } from './types.ts';

const BULWARK_SERVER = fileURLToPath(new URL('../servers/bulwark-broker.ts', import.meta.url));
const BARE_TLS_SERVER = fileURLToPath(new URL('../servers/bare-tls.ts', import.meta.url));
const BROKER_PACKAGE = fileURLToPath(new URL('../../packages/broker/package.json', import.meta.url));

/** Same queue/window settings on both sides (see docs/performance.md, "Broker settings"). */
export const BROKER_SETTINGS = { maxInflight: 1000, maxQueued: 10_000 } as const;

/**
 * What the load generator offers in the TLS handshake: classic groups, as a device's TLS stack does.
 * Node 24's OpenSSL 3.5 would otherwise offer the post-quantum hybrid X25519MLKEM768, which Mosquitto's
 * OpenSSL 3.0 does not know, and the two brokers would not do the same key exchange.
 */
export const CLIENT_GROUPS = 'X25519:P-256';

export function mosquittoPath(): string | undefined {
  for (const p of ['/usr/sbin/mosquitto', '/usr/local/sbin/mosquitto', '/usr/bin/mosquitto']) {
    if (existsSync(p)) return p;
  }
  const r = spawnSync('sh', ['-c', 'command -v mosquitto'], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

export function mosquittoVersion(): string {
  const bin = mosquittoPath();
  if (!bin) return 'not installed';
  const r = spawnSync(bin, ['-h'], { encoding: 'utf8' });
  return /mosquitto version (\S+)/.exec(`${r.stdout}${r.stderr}`)?.[1] ?? 'unknown';
}

export function bulwarkVersion(): string {
  try {
    return (JSON.parse(readFileSync(BROKER_PACKAGE, 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

export interface StartOptions {
  certs: CertSet;
  dir: string;
  cpu: number | undefined;
  /** Directory for a --cpu-prof profile of the Bulwark broker; undefined = no profiling. */
  profileDir?: string | undefined;
  /** Entry file of another copy of @bulwark/broker to measure instead of the working tree's. */
  brokerModule?: string | undefined;
  /** e.g. "at 868f58b", added to the label. */
  brokerLabel?: string | undefined;
}

/**
 * Node flags of the Bulwark broker and of node:tls alone, as `npm start` runs the platform: without
 * the cap V8 grows its young generation to 64 MB per semi-space under a flood of messages (+130 MB
 * RSS) with no gain in speed.
 */
const NODE_FLAGS = ['--max-semi-space-size=8'];

export async function startBroker(kind: BrokerKind, opts: StartOptions): Promise<RunningBroker> {
  if (kind === 'node-tls') return startBareTls(opts);
  return kind === 'bulwark' ? startBulwark(opts) : startMosquitto(opts);
}

async function startBareTls(opts: StartOptions): Promise<RunningBroker> {
  const { certs } = opts;
  const hub = lineHub();
  const child = spawnPinned(
    'node tls',
    process.execPath,
    [
      ...NODE_FLAGS,
      BARE_TLS_SERVER,
      '--ca',
      certs.ca,
      '--cert',
      certs.server.cert,
      '--key',
      certs.server.key,
    ],
    { cpu: opts.cpu, onLine: hub.emit },
  );
  const m = await waitForLine(child, /^READY (\d+)$/, 20_000, hub);
  return {
    kind: 'node-tls',
    label: `node:tls alone (Node ${process.versions.node}, OpenSSL ${process.versions.openssl})`,
    pid: child.pid,
    target: target(certs, Number(m[1])),
    rssKB: () => memory(child.pid).rssKB,
    stop: () => child.stop(5000),
  };
}

function target(certs: CertSet, port: number): RunningBroker['target'] {
  return { host: '127.0.0.1', port, ca: certs.ca, servername: 'localhost', ecdhCurve: CLIENT_GROUPS };
}

async function startBulwark(opts: StartOptions): Promise<RunningBroker> {
  const { certs } = opts;
  const hub = lineHub();
  const args = [
    ...NODE_FLAGS,
    BULWARK_SERVER,
    '--port',
    '0',
    '--ca',
    certs.ca,
    '--cert',
    certs.server.cert,
    '--key',
    certs.server.key,
    '--max-inflight',
    String(BROKER_SETTINGS.maxInflight),
    '--max-queued',
    String(BROKER_SETTINGS.maxQueued),
    ...(opts.brokerModule ? ['--broker-module', opts.brokerModule] : []),
  ];
  if (opts.profileDir) {
    mkdirSync(opts.profileDir, { recursive: true });
    args.unshift('--cpu-prof', `--cpu-prof-dir=${opts.profileDir}`);
  }
  const child = spawnPinned('bulwark broker', process.execPath, args, {
    cpu: opts.cpu,
    ipc: true,
    onLine: hub.emit,
  });
  const m = await waitForLine(child, /^READY (\d+)$/, 20_000, hub);
  const port = Number(m[1]);
  return {
    kind: 'bulwark',
    label:
      `Bulwark @bulwark/broker ${bulwarkVersion()}${opts.brokerLabel ? ` ${opts.brokerLabel}` : ''} ` +
      `(Node ${process.versions.node}, OpenSSL ${process.versions.openssl})`,
    pid: child.pid,
    target: target(certs, port),
    rssKB: () => memory(child.pid).rssKB,
    metrics: () =>
      new Promise((resolve) => {
        if (!child.proc.connected) {
          resolve(undefined);
          return;
        }
        const t = setTimeout(() => resolve(undefined), 2000);
        child.proc.once('message', (m: { metrics?: Record<string, number> }) => {
          clearTimeout(t);
          resolve(m.metrics);
        });
        child.proc.send('metrics');
      }),
    // Writing a CPU profile at exit takes a while: do not SIGKILL it half-way.
    stop: () => child.stop(opts.profileDir ? 30_000 : 5000),
  };
}

async function startMosquitto(opts: StartOptions): Promise<RunningBroker> {
  const bin = mosquittoPath();
  if (!bin) throw new Error('mosquitto is not installed (apt-get install mosquitto)');
  const { certs } = opts;
  mkdirSync(opts.dir, { recursive: true });
  const acl = join(opts.dir, 'mosquitto.acl');
  // The same decisions as the Bulwark bench server's hooks (see bench/servers/bulwark-broker.ts).
  writeFileSync(
    acl,
    'user bench-sub\ntopic read devices/#\n\npattern write devices/%c/#\npattern read devices/%c/#\n',
  );
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    const conf = join(opts.dir, `mosquitto-${port}.conf`);
    const lines = [
      // Mosquitto drops root privileges to the `mosquitto` user, which cannot read our 0700 temp dir.
      ...(process.getuid?.() === 0 ? ['user root'] : []),
      'per_listener_settings false',
      'persistence false',
      'allow_anonymous false',
      'log_dest stderr',
      'log_type error',
      'log_type warning',
      'set_tcp_nodelay true',
      `max_inflight_messages ${BROKER_SETTINGS.maxInflight}`,
      `max_queued_messages ${BROKER_SETTINGS.maxQueued}`,
      `acl_file ${acl}`,
      `listener ${port} 127.0.0.1`,
      `cafile ${certs.ca}`,
      `certfile ${certs.server.cert}`,
      `keyfile ${certs.server.key}`,
      'require_certificate true',
      'use_identity_as_username true',
      'tls_version tlsv1.3',
    ];
    writeFileSync(conf, lines.join('\n') + '\n');
    const child = spawnPinned('mosquitto', bin, ['-c', conf], { cpu: opts.cpu });
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline && !isListening(port) && child.proc.exitCode === null) await sleep(50);
    if (isListening(port)) {
      return {
        kind: 'mosquitto',
        label: `Mosquitto ${mosquittoVersion()} (system OpenSSL)`,
        pid: child.pid,
        target: target(certs, port),
        rssKB: () => memory(child.pid).rssKB,
        stop: () => child.stop(5000),
      };
    }
    await child.stop(1000);
    if (attempt >= 2) throw new Error(`mosquitto did not start on port ${port}\n${child.tail()}`);
  }
}

/**
 * Extracts packages/broker as it was at a git commit into bench/.cache/ (inside the repository, so that
 * its `mqtt-packet` import resolves to our node_modules) and returns its entry file.
 */
export function brokerAtRef(ref: string): { module: string; sha: string } {
  const repo = fileURLToPath(new URL('../..', import.meta.url));
  const rev = spawnSync('git', ['rev-parse', '--short', `${ref}^{commit}`], { cwd: repo, encoding: 'utf8' });
  if (rev.status !== 0) throw new Error(`--broker-ref: ${ref} is not a commit (${rev.stderr.trim()})`);
  const sha = rev.stdout.trim();
  const dir = fileURLToPath(new URL(`../.cache/broker-${sha}/`, import.meta.url));
  const entry = join(dir, 'packages', 'broker', 'src', 'index.ts');
  if (!existsSync(entry)) {
    mkdirSync(dir, { recursive: true });
    const r = spawnSync('sh', ['-c', `git archive ${sha} packages/broker | tar -x -C "${dir}"`], {
      cwd: repo,
      encoding: 'utf8',
    });
    if (r.status !== 0 || !existsSync(entry))
      throw new Error(`--broker-ref: could not extract ${sha}: ${r.stderr}`);
  }
  return { module: entry, sha };
}
