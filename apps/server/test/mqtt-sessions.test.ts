// Persistent MQTT sessions survive a platform restart: a device with a session that outlives its
// connection goes offline, messages for it are published (before and after the restart), the platform
// restarts on the same data, and the device gets every one when it comes back.
import 'reflect-metadata';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { MqttClient } from 'mqtt';
import { buildApp, type App } from '../src/app.ts';
import { loadConfig } from '../src/config/index.ts';
import { silentLogger } from '../src/kernel/index.ts';
import { dropSchema, pgUrl, tempDir } from '../../../test/support/db.ts';
import {
  connectDevice,
  enrollDevice,
  httpsJson,
  waitFor,
  type Platform,
} from '../../../test/support/platform.ts';

/** A platform on a data directory (and database) that outlives it, so it can be restarted. */
async function start(dataDir: string, db: { url?: string; schema?: string }): Promise<Platform> {
  const config = loadConfig({
    env: {
      BULWARK_DATA_DIR: dataDir,
      BULWARK_HTTP_PORT: '0',
      BULWARK_MQTT_PORT: '0',
      BULWARK_HTTP_HOST: '127.0.0.1',
      BULWARK_MQTT_HOST: '127.0.0.1',
      BULWARK_HOSTNAMES: 'localhost,127.0.0.1',
      BULWARK_LOG_LEVEL: 'silent',
      ...(db.url ? { BULWARK_DATABASE_URL: db.url } : {}),
    },
  });
  const app: App = await buildApp(config, {
    logger: silentLogger,
    ...(db.schema ? { databaseSchema: db.schema } : {}),
  });
  const { httpPort, mqttPort } = await app.start();
  const token = readFileSync(app.paths.initialTokenFile, 'utf8').trim();
  const ca = readFileSync(app.paths.caFile, 'utf8');
  const url = `https://127.0.0.1:${httpPort}`;
  return {
    app,
    dataDir,
    url,
    httpPort,
    mqttPort,
    token,
    ca,
    api: (method, path, body, tok = token) => httpsJson(url, ca, method, path, body, tok),
    close: () => app.close(),
  };
}

const received = (c: MqttClient): string[] => {
  const got: string[] = [];
  c.on('message', (_topic, payload) => got.push(payload.toString()));
  return got;
};

for (const backend of ['sqlite', 'postgres'] as const) {
  test(
    `a persistent session outlives a platform restart (${backend})`,
    { skip: backend === 'postgres' && !pgUrl ? 'PostgreSQL not reachable' : false },
    async () => {
      const dir = tempDir('bulwark-sessions-');
      const db = backend === 'postgres' ? { url: pgUrl!, schema: `t_${randomBytes(6).toString('hex')}` } : {};
      let p = await start(dir.path, db);
      try {
        const creds = await enrollDevice(p, 'keeper-1');
        const persistent = {
          clientId: 'keeper-1',
          clean: false,
          properties: { sessionExpiryInterval: 3600 },
        };
        const first = await connectDevice(p, creds, persistent);
        assert.equal(first.connected, true);
        await first.subscribeAsync('devices/keeper-1/inbox/#', { qos: 1 });
        await first.endAsync();
        await waitFor(() => (p.app.mqtt.isConnected('default', 'keeper-1') ? undefined : true));

        for (const n of [1, 2, 3]) {
          await p.app.mqtt.broker.publish({
            topic: 'devices/keeper-1/inbox/job',
            payload: `before-${n}`,
            qos: 1,
          });
        }
        await p.close();

        p = await start(dir.path, db);
        // The restarted platform holds the session again: a message published while the device is
        // still away is queued for it too.
        assert.equal(p.app.mqtt.broker.metrics.sessions, 1);
        await p.app.mqtt.broker.publish({ topic: 'devices/keeper-1/inbox/job', payload: 'after', qos: 1 });

        const again = await connectDevice(p, creds, persistent);
        const got = received(again);
        try {
          await waitFor(() => (got.length >= 4 ? true : undefined), 5000);
          assert.deepEqual(got, ['before-1', 'before-2', 'before-3', 'after']);
          // And it is still subscribed.
          await p.app.mqtt.broker.publish({ topic: 'devices/keeper-1/inbox/job', payload: 'live', qos: 1 });
          await waitFor(() => (got.length >= 5 ? true : undefined));
          assert.equal(got[4], 'live');
        } finally {
          await again.endAsync();
        }
      } finally {
        await p.close();
        if (db.schema && pgUrl) await dropSchema(pgUrl, db.schema);
        dir.cleanup();
      }
    },
  );
}
