// `bulwark simulate` against a running platform: devices enroll through the API, send telemetry,
// answer commands and apply a simulated firmware update from their twin, then stop cleanly.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
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

test('simulate: N devices, telemetry at the given rate, commands, twin update, clean stop on SIGINT', async () => {
  const child = spawn(
    process.execPath,
    [
      BIN,
      'simulate',
      '--devices',
      '3',
      '--rate',
      '30',
      '--fail-ota',
      '0',
      '--prefix',
      'simx',
      '--json',
      '--mqtt-url',
      `mqtts://localhost:${p.mqttPort}`,
    ],
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
  try {
    const connected = async (id: string) =>
      (await p.api<{ connected?: boolean }>('GET', `/api/v1/devices/${id}`)).body.connected || undefined;
    for (const id of ['simx-0001', 'simx-0002', 'simx-0003']) await waitFor(() => connected(id), 20_000, 100);

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
    child.kill('SIGINT');
  }
  assert.equal(await exited, 0, stderr);
  const summary = JSON.parse(stdout) as {
    devices: number;
    sent: number;
    acked: number;
    updates: { succeeded: number };
  };
  assert.equal(summary.devices, 3);
  assert.ok(summary.acked > 0 && summary.acked <= summary.sent, stdout);
  assert.equal(summary.updates.succeeded, 1);
  const listed = await p.api<{ items: { id: string }[] }>('GET', '/api/v1/devices');
  assert.deepEqual(
    listed.body.items
      .map((d) => d.id)
      .filter((id) => id.startsWith('simx-'))
      .sort(),
    ['simx-0001', 'simx-0002', 'simx-0003'],
  );
});
