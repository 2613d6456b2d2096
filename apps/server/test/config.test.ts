import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig } from '../src/config/index.ts';
import { isAppError } from '../src/kernel/index.ts';
import { tempDir } from '../../../test/support/db.ts';

test('defaults: TLS ports 8883 and 8443, embedded SQLite under the data dir', () => {
  const c = loadConfig({ env: {} });
  assert.equal(c.mqtt.port, 8883);
  assert.equal(c.http.port, 8443);
  assert.match(c.database.url, /^sqlite:.*\/data\/bulwark\.db$/);
  assert.deepEqual(c.hostnames, ['localhost', '127.0.0.1', '::1']);
  assert.ok(Object.isFrozen(c) && Object.isFrozen(c.mqtt));
});

test('environment overrides the file, which overrides defaults', () => {
  const dir = tempDir();
  try {
    const file = join(dir.path, 'bulwark.json');
    writeFileSync(file, JSON.stringify({ mqtt: { port: 18883 }, http: { port: 18443 } }));
    const c = loadConfig({
      file,
      env: { BULWARK_HTTP_PORT: '28443', BULWARK_HOSTNAMES: 'iot.example.com, 10.0.0.5' },
    });
    assert.equal(c.mqtt.port, 18883);
    assert.equal(c.http.port, 28443);
    assert.deepEqual(c.hostnames, ['iot.example.com', '10.0.0.5']);
  } finally {
    dir.cleanup();
  }
});

test('an invalid configuration lists every problem at once', () => {
  try {
    loadConfig({
      env: {
        BULWARK_MQTT_PORT: 'abc',
        BULWARK_HTTP_PORT: '70000',
        BULWARK_HOSTNAMES: 'bad host!,ok.example',
        BULWARK_DATABASE_URL: 'mysql://x',
        BULWARK_LOG_LEVEL: 'loud',
        BULWARK_TENANT: 'Not_Valid',
        BULWARK_MASTER_KEY: 'c2hvcnQ=',
        BULWARK_NO_SUCH_OPTION: '1',
      },
    });
    assert.fail('expected an error');
  } catch (err) {
    assert.ok(isAppError(err));
    assert.equal(err.code, 'ERR_CONFIG_INVALID');
    const text = (err.errors ?? []).map((e) => e.message).join('\n');
    for (const needle of [
      'mqtt.port',
      'http.port',
      'bad host!',
      'database.url',
      'log.level',
      'tenant',
      'masterKey',
      'BULWARK_NO_SUCH_OPTION',
    ]) {
      assert.ok(text.includes(needle), `missing problem about ${needle} in:\n${text}`);
    }
    assert.equal(err.errors?.length, 8);
  }
});

test('unknown keys in the config file are refused', () => {
  const dir = tempDir();
  try {
    const file = join(dir.path, 'bulwark.json');
    writeFileSync(file, JSON.stringify({ mqtt: { prot: 1 } }));
    assert.throws(
      () => loadConfig({ file, env: {} }),
      (err) => isAppError(err) && /mqtt\.prot/.test(JSON.stringify(err.errors)),
    );
    writeFileSync(file, '{ not json');
    assert.throws(
      () => loadConfig({ file, env: {} }),
      (err) => isAppError(err) && err.code === 'ERR_CONFIG_INVALID',
    );
  } finally {
    dir.cleanup();
  }
});
