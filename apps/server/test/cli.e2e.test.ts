// The README's walk-through, run for real: the bulwark CLI against a running platform, then
// mosquitto_pub (a client nobody here wrote) with the files the CLI wrote.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startPlatform, waitFor, type Platform } from '../../../test/support/platform.ts';
import { tempDir } from '../../../test/support/db.ts';

const BIN = fileURLToPath(new URL('../../../packages/cli/bin/bulwark.js', import.meta.url));
const hasMosquitto = spawnSync('sh', ['-c', 'command -v mosquitto_pub']).status === 0;
const skip = hasMosquitto ? false : 'mosquitto_pub not installed (apt-get install mosquitto-clients)';

function run(
  cmd: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  cwd: string,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env, cwd });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stdout, stderr });
    });
  });
}

let p: Platform;
let work: { path: string; cleanup(): void };
let env: NodeJS.ProcessEnv;
before(async () => {
  p = await startPlatform();
  work = tempDir('bulwark-cli-');
  env = {
    PATH: process.env.PATH,
    HOME: work.path,
    BULWARK_CONFIG_DIR: join(work.path, 'config'),
    BULWARK_URL: p.url,
    BULWARK_TOKEN: p.token,
    BULWARK_CA_FILE: p.app.paths.caFile,
  };
});
after(async () => {
  await p.close();
  work.cleanup();
});

const bulwark = (...args: string[]) => run(process.execPath, [BIN, ...args], env, work.path);
const mosquittoPub = (dir: string, clientId: string, topic: string, message: string) =>
  run(
    'mosquitto_pub',
    [
      '-h',
      'localhost',
      '-p',
      String(p.mqttPort),
      '--cafile',
      join(dir, 'ca.crt'),
      '--cert',
      join(dir, 'device.crt'),
      '--key',
      join(dir, 'device.key'),
      '-i',
      clientId,
      '-q',
      '1',
      '-t',
      topic,
      '-m',
      message,
      '-V',
      'mqttv5',
    ],
    env,
    work.path,
  );

test(
  'device create -> mosquitto_pub over mTLS -> telemetry read back -> revoke -> refused',
  { skip },
  async () => {
    const created = await bulwark('device', 'create', 'sensor-1', '--out', './sensor-1');
    assert.equal(created.code, 0, created.stderr);
    const dir = join(work.path, 'sensor-1');
    assert.equal(statSync(join(dir, 'device.key')).mode & 0o777, 0o600);
    statSync(join(dir, 'device.crt'));
    statSync(join(dir, 'ca.crt'));

    const pub = await mosquittoPub(dir, 'sensor-1', 'devices/sensor-1/telemetry', '{"temp":21.5}');
    assert.equal(pub.code, 0, pub.stderr);

    const tel = await bulwark('telemetry', 'sensor-1', '--json');
    assert.equal(tel.code, 0, tel.stderr);
    const body = JSON.parse(tel.stdout) as { items: { ts: string; data: unknown }[] };
    assert.deepEqual(
      body.items.map((i) => i.data),
      [{ temp: 21.5 }],
    );

    const list = await bulwark('device', 'list');
    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stdout, /sensor-1/);

    const revoked = await bulwark('device', 'revoke', 'sensor-1');
    assert.equal(revoked.code, 0, revoked.stderr);
    const refused = await mosquittoPub(dir, 'sensor-1', 'devices/sensor-1/telemetry', '{"temp":99}');
    assert.notEqual(refused.code, 0, 'a revoked device cannot publish');
    const after = JSON.parse((await bulwark('telemetry', 'sensor-1', '--json')).stdout) as {
      items: unknown[];
    };
    assert.equal(after.items.length, 1);
  },
);

test('mosquitto_pub with another device id than its certificate is refused', { skip }, async () => {
  assert.equal((await bulwark('device', 'create', 'sensor-2', '--out', './sensor-2')).code, 0);
  const dir = join(work.path, 'sensor-2');
  const wrongId = await mosquittoPub(dir, 'sensor-9', 'devices/sensor-9/telemetry', '{"a":1}');
  assert.notEqual(wrongId.code, 0);
  const ok = await mosquittoPub(dir, 'sensor-2', 'devices/sensor-2/telemetry', '{"a":1}');
  assert.equal(ok.code, 0, ok.stderr);
  await waitFor(async () =>
    (await p.api<{ items: unknown[] }>('GET', '/api/v1/devices/sensor-2/telemetry')).body.items.length === 1
      ? true
      : undefined,
  );
});

test('CLI errors: problem codes are shown, and a wrong CA is a TLS error, never ignored', async () => {
  const missing = await bulwark('device', 'show', 'nope');
  assert.notEqual(missing.code, 0);
  assert.match(missing.stderr, /ERR_DEVICE_NOT_FOUND/);
  const noCa = await run(
    process.execPath,
    [BIN, 'device', 'list'],
    { ...env, BULWARK_CA_FILE: '' },
    work.path,
  );
  assert.equal(noCa.code, 3, noCa.stderr);
});
