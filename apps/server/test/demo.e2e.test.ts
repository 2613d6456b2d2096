// `npm run demo` (scripts/demo.ts) as a newcomer runs it on a fresh clone: the platform starts on its
// embedded default with an empty data directory, simulated devices enroll over EST and send telemetry,
// the banner says where to look, and Ctrl-C stops everything cleanly.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { httpsJson, waitFor } from '../../../test/support/platform.ts';
import { tempDir } from '../../../test/support/db.ts';

const DEMO = fileURLToPath(new URL('../../../scripts/demo.ts', import.meta.url));

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      const port = typeof a === 'object' && a ? a.port : 0;
      s.close(() => resolve(port));
    });
  });
}

let work: { path: string; cleanup(): void };
before(() => {
  work = tempDir('bulwark-demo-');
});
after(() => work.cleanup());

test('npm run demo: a fresh data directory, devices enrolled over EST and sending, a banner, a clean Ctrl-C', async () => {
  const [httpPort, mqttPort] = [await freePort(), await freePort()];
  const dataDir = join(work.path, 'data-demo');
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: work.path };
  const child = spawn(
    process.execPath,
    [DEMO, '--devices', '3', '--rate', '6', '--fail-ota', '0', '--data-dir', dataDir],
    {
      cwd: work.path,
      env: {
        ...env,
        BULWARK_HTTP_PORT: String(httpPort),
        BULWARK_MQTT_PORT: String(mqttPort),
        // Loopback only: the demo's default is every interface.
        BULWARK_HTTP_HOST: '127.0.0.1',
        BULWARK_MQTT_HOST: '127.0.0.1',
      },
    },
  );
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((r) => child.on('close', (code) => r(code)));
  try {
    await waitFor(() => stdout.includes('Bulwark demo is running') || undefined, 60_000, 100);
    assert.match(stdout, new RegExp(`REST API +https://localhost:${httpPort}/api/v1`));
    assert.match(stdout, /export BULWARK_URL=.* BULWARK_TOKEN=\$\(cat .*initial-admin-token\)/);
    const ca = readFileSync(join(dataDir, 'tls', 'ca.crt'), 'utf8');
    const token = readFileSync(join(dataDir, 'secrets', 'initial-admin-token'), 'utf8').trim();
    const base = `https://127.0.0.1:${httpPort}`;
    const api = <T>(path: string) => httpsJson<T>(base, ca, 'GET', path, undefined, token);
    const ids = ['demo-0001', 'demo-0002', 'demo-0003'];
    for (const id of ids) {
      await waitFor(
        async () => (await api<{ connected?: boolean }>(`/api/v1/devices/${id}`)).body.connected || undefined,
        60_000,
        200,
      );
    }
    await waitFor(
      async () =>
        (await api<{ items: unknown[] }>('/api/v1/devices/demo-0001/telemetry')).body.items.length > 0 ||
        undefined,
      20_000,
      200,
    );
    // Each device has its own certificate, got over EST with the simulator's enrollment code.
    const serials = new Set<string>();
    for (const id of ids) {
      const certs = await api<{ items: { serial: string; enrolledVia: string | null }[] }>(
        `/api/v1/certificates?deviceId=${id}`,
      );
      assert.equal(certs.body.items.length, 1, id);
      assert.match(certs.body.items[0]?.enrolledVia ?? '', /^code:enc_/, id);
      serials.add(certs.body.items[0]?.serial ?? '');
    }
    assert.equal(serials.size, 3);
    const audit = await api<{ items: { action: string; actor: { id: string } }[] }>(
      '/api/v1/audit?action=est.enroll&limit=50',
    );
    assert.deepEqual(audit.body.items.map((e) => e.actor.id).sort(), ids);
  } finally {
    child.kill('SIGINT');
  }
  assert.equal(await exited, 0, stderr);
  assert.match(stderr, /stopping the simulator and the platform/);
});
