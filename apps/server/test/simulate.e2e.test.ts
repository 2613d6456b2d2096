// `bulwark simulate` against a running platform: devices enroll over EST with a fleet code the
// simulator makes (and revokes), send telemetry, answer commands and apply a simulated firmware update
// from their twin, then stop cleanly; a second run reuses the certificates.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startPlatform, waitFor, type Platform } from '../../../test/support/platform.ts';
import { tempDir } from '../../../test/support/db.ts';

const BIN = fileURLToPath(new URL('../../../packages/cli/bin/bulwark.js', import.meta.url));

let p: Platform;
let work: { path: string; cleanup(): void };
before(async () => {
  p = await startPlatform();
  work = tempDir('bulwark-sim-');
});
after(async () => {
  await p.close();
  work.cleanup();
});

interface Summary {
  devices: number;
  enrolled: { est: number; reused: number };
  sent: number;
  acked: number;
  updates: { succeeded: number };
}

function simulate(args: string[]) {
  const child = spawn(
    process.execPath,
    [BIN, 'simulate', '--json', '--mqtt-url', `mqtts://localhost:${p.mqttPort}`, ...args],
    {
      cwd: work.path,
      env: {
        PATH: process.env.PATH,
        HOME: work.path,
        BULWARK_CONFIG_DIR: `${work.path}/config`,
        BULWARK_URL: `https://localhost:${p.httpPort}`,
        BULWARK_TOKEN: p.token,
        BULWARK_CA_FILE: p.app.paths.caFile,
      },
    },
  );
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number>((r) => child.on('close', (code) => r(code ?? -1)));
  return {
    stop: () => child.kill('SIGINT'),
    async result(): Promise<Summary> {
      assert.equal(await exited, 0, stderr);
      return JSON.parse(stdout) as Summary;
    },
  };
}

const connected = async (id: string) =>
  (await p.api<{ connected?: boolean }>('GET', `/api/v1/devices/${id}`)).body.connected || undefined;

type Certificate = { serial: string; enrolledVia: string | null; status: string };
const certificatesOf = async (id: string) =>
  (await p.api<{ items: Certificate[] }>('GET', `/api/v1/certificates?deviceId=${id}`)).body.items;

test('simulate: N devices enrolled over EST, telemetry at the given rate, commands, twin update, clean stop on SIGINT', async () => {
  assert.equal((await p.api('POST', '/api/v1/fleets', { path: 'sim' })).status, 201);
  const ids = ['simx-0001', 'simx-0002', 'simx-0003'];
  const sim = simulate([
    '--devices',
    '3',
    '--rate',
    '30',
    '--fail-ota',
    '0',
    '--prefix',
    'simx',
    '--fleet',
    'sim',
  ]);
  try {
    for (const id of ids) await waitFor(() => connected(id), 20_000, 100);

    const ping = await p.api<{ status: string; result: unknown }>(
      'POST',
      '/api/v1/devices/simx-0002/commands',
      {
        name: 'ping',
      },
    );
    assert.deepEqual([ping.body.status, ping.body.result], ['succeeded', 'pong']);
    await p.api('PUT', '/api/v1/devices/simx-0001/twin', { desired: { firmware: '1.1.0' } });
    const reported = await waitFor(
      async () => {
        const t = await p.api<{ reported: { state: { firmware?: string }; desiredVersion: number } | null }>(
          'GET',
          '/api/v1/devices/simx-0001/twin',
        );
        return t.body.reported?.state.firmware === '1.1.0' ? t.body.reported : undefined;
      },
      10_000,
      100,
    );
    assert.equal(reported.desiredVersion, 1);
    await waitFor(
      async () =>
        (await p.api<{ items: unknown[] }>('GET', '/api/v1/devices/simx-0003/telemetry')).body.items.length >
          0 || undefined,
      10_000,
      100,
    );
    const caps = await p.api<{ capabilities: { hardware: { model: string } } }>(
      'GET',
      '/api/v1/devices/simx-0001/capabilities',
    );
    assert.equal(caps.body.capabilities.hardware.model, 'bulwark-sim');
  } finally {
    sim.stop();
  }
  const summary = await sim.result();
  assert.equal(summary.devices, 3);
  assert.deepEqual(summary.enrolled, { est: 3, reused: 0 });
  assert.ok(summary.acked > 0 && summary.acked <= summary.sent, JSON.stringify(summary));
  assert.equal(summary.updates.succeeded, 1);

  // Every device enrolled itself over EST with the simulator's fleet code; no device was created
  // through the API.
  const codes = await p.api<{
    items: { id: string; fleet: string; quota: number; used: number; status: string }[];
  }>('GET', '/api/v1/enrollment-codes');
  const code = codes.body.items.find((c) => c.fleet === 'sim');
  assert.ok(code, JSON.stringify(codes.body));
  assert.deepEqual(
    [code.quota, code.used, code.status],
    [3, 3, 'revoked'],
    'revoked once every device enrolled',
  );
  for (const id of ids) {
    const certs = await certificatesOf(id);
    assert.deepEqual(
      certs.map((c) => c.enrolledVia),
      [`code:${code.id}`],
    );
    const device = await p.api<{ fleet: string }>('GET', `/api/v1/devices/${id}`);
    assert.equal(device.body.fleet, 'sim');
  }
  const audit = await p.api<{ items: { action: string; actor: { type: string; id: string } }[] }>(
    'GET',
    '/api/v1/audit?limit=200',
  );
  const actions = (id: string) => audit.body.items.filter((e) => e.actor.id === id).map((e) => e.action);
  for (const id of ids) assert.ok(actions(id).includes('est.enroll'), `${id}: ${actions(id).join(', ')}`);
  assert.ok(
    !audit.body.items.some((e) => e.action === 'device.create' || e.action === 'cert.issue'),
    'nothing was created or issued through the API',
  );
  const listed = await p.api<{ items: { id: string }[] }>('GET', '/api/v1/devices');
  assert.deepEqual(
    listed.body.items
      .map((d) => d.id)
      .filter((id) => id.startsWith('simx-'))
      .sort(),
    ids,
  );
});

test('simulate again: the certificates are reused; a device whose state is gone re-enrolls with a code bound to it', async () => {
  const before = await certificatesOf('simx-0002');
  // simx-0002 "lost its key" (a factory reset): the platform knows it, so a fleet code cannot take it
  // over; the simulator gets a one-time code for that device id.
  rmSync(join(work.path, '.bulwark-sim', 'simx-0002'), { recursive: true, force: true });
  const sim = simulate(['--devices', '3', '--rate', '5', '--prefix', 'simx', '--duration', '30']);
  try {
    for (const id of ['simx-0001', 'simx-0002', 'simx-0003']) await waitFor(() => connected(id), 20_000, 100);
  } finally {
    sim.stop();
  }
  const summary = await sim.result();
  assert.deepEqual(summary.enrolled, { est: 1, reused: 2 });
  assert.equal((await certificatesOf('simx-0001')).length, 1, 'simx-0001 kept its certificate');
  const after = await certificatesOf('simx-0002');
  assert.equal(after.length, before.length + 1);
  const codes = await p.api<{ items: { id: string; deviceId: string | null; used: number }[] }>(
    'GET',
    '/api/v1/enrollment-codes',
  );
  const own = codes.body.items.find((c) => c.deviceId === 'simx-0002');
  assert.ok(own && own.used === 1, JSON.stringify(codes.body));
  assert.ok(after.some((c) => c.enrolledVia === `code:${own.id}`));
});
