// "An acknowledged message is never lost, even if the process is killed right after": the platform runs
// as its own process, a device publishes QoS 1 telemetry as fast as it can, and the process is killed
// with SIGKILL the moment enough PUBACKs have arrived. Every acknowledged message must be in the database.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DatabaseSync } from 'node:sqlite';
import mqtt from 'mqtt';
import { tempDir } from '../../../test/support/db.ts';
import { httpsJson, makeCsr } from '../../../test/support/platform.ts';

const MAIN = fileURLToPath(new URL('../src/main.ts', import.meta.url));

test('SIGKILL right after PUBACKs loses no acknowledged message', async () => {
  const dir = tempDir('bulwark-kill-');
  const child = spawn(process.execPath, [MAIN], {
    env: {
      PATH: process.env.PATH,
      BULWARK_DATA_DIR: dir.path,
      BULWARK_HTTP_PORT: '0',
      BULWARK_MQTT_PORT: '0',
      BULWARK_HTTP_HOST: '127.0.0.1',
      BULWARK_MQTT_HOST: '127.0.0.1',
      BULWARK_HOSTNAMES: 'localhost,127.0.0.1',
      BULWARK_LOG_LEVEL: 'error',
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  try {
    const ports = await new Promise<{ http: number; mqtt: number }>((resolve, reject) => {
      let out = '';
      const timer = setTimeout(() => reject(new Error(`server did not start:\n${out}`)), 30_000);
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        const http = /API\s+https:\/\/[^:]+:(\d+)/.exec(out);
        const mq = /MQTT\s+mqtts:\/\/[^:]+:(\d+)/.exec(out);
        if (http?.[1] && mq?.[1]) {
          clearTimeout(timer);
          resolve({ http: Number(http[1]), mqtt: Number(mq[1]) });
        }
      });
      child.once('exit', (code) => reject(new Error(`server exited ${code}:\n${out}`)));
    });
    const ca = readFileSync(join(dir.path, 'tls', 'ca.crt'), 'utf8');
    const token = readFileSync(join(dir.path, 'secrets', 'initial-admin-token'), 'utf8').trim();
    const base = `https://127.0.0.1:${ports.http}`;
    assert.equal((await httpsJson(base, ca, 'POST', '/api/v1/devices', { id: 'pump-7' }, token)).status, 201);
    const { keyPem, csrPem } = await makeCsr('pump-7');
    const issued = await httpsJson<{ chain: string; ca: string }>(
      base,
      ca,
      'POST',
      '/api/v1/devices/pump-7/certificates',
      { csr: csrPem },
      token,
    );
    assert.equal(issued.status, 201);

    const client = await mqtt.connectAsync({
      protocol: 'mqtts',
      host: '127.0.0.1',
      port: ports.mqtt,
      servername: 'localhost',
      key: keyPem,
      cert: issued.body.chain,
      ca: issued.body.ca,
      clientId: 'pump-7',
      protocolVersion: 5,
      reconnectPeriod: 0,
    });
    const acked: number[] = [];
    const target = 300;
    client.on('error', () => {});
    await new Promise<void>((resolve) => {
      for (let n = 0; n < 2000; n++) {
        client.publish('devices/pump-7/telemetry', JSON.stringify({ n }), { qos: 1 }, (err) => {
          if (err) return; // after the kill: never acknowledged, so nothing is owed
          acked.push(n);
          if (acked.length === target) {
            child.kill('SIGKILL');
            resolve();
          }
        });
      }
    });
    await new Promise((r) => child.once('exit', r));
    client.end(true);

    const db = new DatabaseSync(join(dir.path, 'bulwark.db'));
    const stored = new Set(
      (db.prepare("SELECT data FROM telemetry WHERE device_id = 'pump-7'").all() as { data: string }[]).map(
        (r) => (JSON.parse(r.data) as { n: number }).n,
      ),
    );
    db.close();
    const lost = acked.filter((n) => !stored.has(n));
    assert.deepEqual(lost, [], `${lost.length} acknowledged messages missing after SIGKILL`);
    assert.ok(stored.size >= target);
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
    dir.cleanup();
  }
});
