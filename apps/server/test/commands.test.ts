// Commands module: the store on every backend, the capability report validator and the command
// service's handling of device replies (untrusted input).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { backends } from '../../../test/support/db.ts';
import { fixedClock, isAppError, randomIds, silentLogger, type Db } from '../src/kernel/index.ts';
import {
  createCommandsService,
  createCommandsStore,
  validateCapabilities,
  type CommandsStore,
  type OutboundMessage,
} from '../src/modules/commands/index.ts';

for (const backend of backends) {
  describe(`commands store (${backend.name})`, { skip: backend.skip }, () => {
    let db: Db;
    let cleanup: () => Promise<void>;
    let store: CommandsStore;
    before(async () => {
      const opened = await backend.open();
      db = opened.db;
      cleanup = opened.cleanup;
      store = createCommandsStore(db);
    });
    after(async () => {
      await cleanup();
    });

    test('desired state: versions 1, 2, ...; compare-and-set refuses a stale version', async () => {
      assert.equal(await store.getTwin('t1', 'd1'), undefined);
      assert.equal(await store.setDesired('t1', 'd1', '{"a":1}', 1000), 1);
      assert.equal(await store.setDesired('t1', 'd1', '{"a":2}', 2000), 2);
      assert.equal(await store.setDesired('t1', 'd1', '{"a":3}', 3000, 1), undefined, 'stale');
      assert.equal(await store.setDesired('t1', 'd1', '{"a":3}', 3000, 2), 3);
      assert.equal(await store.setDesired('t1', 'd2', '{}', 3000, 5), undefined, 'no twin is version 0');
      assert.equal(await store.setDesired('t1', 'd2', '{}', 3000, 0), 1);
      const twin = await store.getTwin('t1', 'd1');
      assert.deepEqual(twin, {
        desired: '{"a":3}',
        desiredVersion: 3,
        desiredUpdatedAt: 3000,
        reported: null,
        reportedDesiredVersion: null,
        reportedUpdatedAt: null,
      });
      assert.equal(await store.getTwin('t2', 'd1'), undefined, 'tenants are separate');
    });

    test('concurrent desired writes without a version all land, each with its own version', async () => {
      const versions = await Promise.all(
        Array.from({ length: 5 }, (_, i) => store.setDesired('t1', 'race', `{"i":${i}}`, 1)),
      );
      assert.deepEqual([...versions].sort(), [1, 2, 3, 4, 5]);
    });

    test('reported state: upserted, keeps the desired state', async () => {
      await store.setReported('t1', 'd3', '{"fw":"1.0"}', null, 10);
      let twin = await store.getTwin('t1', 'd3');
      assert.equal(twin?.desiredVersion, 0);
      assert.equal(twin?.reported, '{"fw":"1.0"}');
      await store.setDesired('t1', 'd3', '{"fw":"1.1"}', 20);
      await store.setReported('t1', 'd3', '{"fw":"1.1"}', 1, 30);
      twin = await store.getTwin('t1', 'd3');
      assert.equal(twin?.desired, '{"fw":"1.1"}');
      assert.equal(twin?.reportedDesiredVersion, 1);
      assert.equal(twin?.reportedUpdatedAt, 30);
    });

    test('capabilities: a new version only when the report changed; history newest first', async () => {
      assert.deepEqual(await store.addCapabilities('t1', 'd1', '{"a":1}', 'h1', 1), {
        version: 1,
        changed: true,
      });
      assert.deepEqual(await store.addCapabilities('t1', 'd1', '{"a":1}', 'h1', 2), {
        version: 1,
        changed: false,
      });
      assert.deepEqual(await store.addCapabilities('t1', 'd1', '{"a":2}', 'h2', 3), {
        version: 2,
        changed: true,
      });
      assert.deepEqual(await store.addCapabilities('t1', 'd1', '{"a":1}', 'h1', 4), {
        version: 3,
        changed: true,
      });
      assert.deepEqual(await store.latestCapabilities('t1', 'd1'), {
        version: 3,
        json: '{"a":1}',
        reportedAt: 4,
      });
      const page = await store.listCapabilities('t1', 'd1', { limit: 2 });
      assert.deepEqual(
        page.map((r) => r.version),
        [3, 2],
      );
      const next = await store.listCapabilities('t1', 'd1', { limit: 2, beforeVersion: 2 });
      assert.deepEqual(
        next.map((r) => r.version),
        [1],
      );
    });

    test('the newest capability report of many devices at once', async () => {
      await store.addCapabilities('t1', 'm1', '{"v":1}', 'a', 1);
      await store.addCapabilities('t1', 'm1', '{"v":2}', 'b', 2);
      await store.addCapabilities('t1', 'm2', '{"v":1}', 'a', 1);
      await store.addCapabilities('t2', 'm3', '{"v":1}', 'a', 1);
      const ids = [...Array.from({ length: 600 }, (_, i) => `none-${i}`), 'm1', 'm2', 'm3'];
      const m = await store.latestCapabilitiesOf('t1', ids);
      assert.deepEqual(Object.fromEntries(m), { m1: '{"v":2}', m2: '{"v":1}' }, 'm3 is another tenant’s');
    });

    test('deleting a device removes its twin and capability history', async () => {
      await store.deleteDevice('t1', 'd1');
      assert.equal(await store.getTwin('t1', 'd1'), undefined);
      assert.equal(await store.latestCapabilities('t1', 'd1'), undefined);
      assert.ok(await store.getTwin('t1', 'd3'), 'other devices untouched');
    });
  });
}

describe('capability report validator refuses malformed reports', () => {
  const bad: [string, unknown][] = [
    ['not an object', [1]],
    ['null', null],
    ['unknown top-level field', { color: 'red' }],
    ['hardware not an object', { hardware: 'pi' }],
    ['hardware unknown field', { hardware: { cpu: 'arm' } }],
    ['hardware model too long', { hardware: { model: 'x'.repeat(300) } }],
    ['firmware version a number', { firmware: { version: 1 } }],
    ['software not an array', { software: {} }],
    ['software item not an object', { software: ['openssl'] }],
    ['tls versions not strings', { tls: { versions: [1.3] } }],
    ['tls too many key types', { tls: { keyTypes: Array.from({ length: 20 }, () => 'p256') } }],
    ['port out of range', { listeningPorts: [{ protocol: 'tcp', address: '0.0.0.0', port: 70000 }] }],
    ['port protocol unknown', { listeningPorts: [{ protocol: 'sctp', address: '0.0.0.0', port: 1 }] }],
    ['port with extra field', { listeningPorts: [{ protocol: 'tcp', address: '::', port: 1, pid: 7 }] }],
    ['ports not an array', { listeningPorts: 22 }],
    ['sbom not CycloneDX', { sbom: { bomFormat: 'SPDX' } }],
    ['sbom an array', { sbom: [] }],
    ['updateMethod too long', { updateMethod: 'x'.repeat(100) }],
  ];
  for (const [name, value] of bad) {
    test(name, () =>
      assert.throws(
        () => validateCapabilities(value),
        (e) => isAppError(e) && e.code === 'ERR_CAPABILITIES_INVALID' && (e.errors?.length ?? 0) > 0,
      ),
    );
  }
  test('a full report passes unchanged', () => {
    const report = {
      hardware: { model: 'rpi4', revision: 'c03114' },
      firmware: { version: '2.1.0' },
      software: [{ name: 'app', version: '1.0' }],
      updateMethod: 'ab-partition',
      keyStorage: 'file',
      tls: { versions: ['TLSv1.3'], keyTypes: ['p256'] },
      listeningPorts: [],
      sbom: { bomFormat: 'CycloneDX', specVersion: '1.5', components: [] },
      sdk: { name: '@bulwark/device', version: '0.1.0' },
    };
    assert.deepEqual(validateCapabilities(report), report);
  });
});

describe('command service', () => {
  const published: OutboundMessage[] = [];
  let connected = true;
  const store = {} as CommandsStore; // these tests never reach the store
  const svc = createCommandsService({
    store,
    clock: fixedClock(1_000_000),
    ids: randomIds,
    logger: silentLogger,
    publish: async (m) => void published.push(m),
    isConnected: () => connected,
    deviceExists: async () => {},
  });
  after(() => svc.close());

  const malformedResults: [string, string][] = [
    ['not JSON', 'ok'],
    ['invalid UTF-8', '\u00ff'],
    ['array', '[]'],
    ['no id', '{"status":"succeeded"}'],
    ['id a number', '{"id":1,"status":"succeeded"}'],
    ['unknown status', '{"id":"x","status":"done"}'],
    ['error not a string', '{"id":"x","status":"failed","error":{}}'],
    ['id too long', JSON.stringify({ id: 'x'.repeat(200), status: 'failed' })],
  ];
  for (const [name, text] of malformedResults) {
    test(`a malformed result is refused: ${name}`, () => {
      const payload = name === 'invalid UTF-8' ? Buffer.from([0x7b, 0xff, 0x7d]) : Buffer.from(text);
      assert.throws(
        () => svc.handleResult('t', 'd', payload),
        (e) => isAppError(e) && e.code === 'ERR_COMMAND_RESULT_INVALID',
      );
    });
  }

  test('a command goes to the device topic with correlation data; only that device can answer it', async () => {
    const pending = svc.send('t', 'dev-1', { name: 'reboot', payload: { delay: 5 }, timeoutMs: 5000 });
    await new Promise((r) => setImmediate(r));
    const msg = published.at(-1);
    assert.equal(msg?.topic, 'devices/dev-1/commands/reboot');
    assert.equal(msg?.qos, 1);
    assert.equal(msg?.properties?.responseTopic, 'devices/dev-1/commands/result');
    assert.equal(msg?.properties?.messageExpiryInterval, 5);
    const req = JSON.parse(msg?.payload.toString() ?? '{}') as { id: string; name: string; payload: unknown };
    assert.equal(msg?.properties?.correlationData?.toString(), req.id);
    assert.deepEqual(req.payload, { delay: 5 });
    assert.equal(svc.pending, 1);
    // Another device (or tenant) answering the id is ignored.
    svc.handleResult('t', 'dev-2', Buffer.from(JSON.stringify({ id: req.id, status: 'succeeded' })));
    svc.handleResult('t2', 'dev-1', Buffer.from(JSON.stringify({ id: req.id, status: 'succeeded' })));
    assert.equal(svc.pending, 1);
    svc.handleResult(
      't',
      'dev-1',
      Buffer.from(JSON.stringify({ id: req.id, status: 'succeeded', result: 42 })),
    );
    assert.deepEqual(await pending, { id: req.id, status: 'succeeded', result: 42 });
    assert.equal(svc.pending, 0);
  });

  test('timeout, offline device, bad names, and the per-device cap', async () => {
    const r = await svc.send('t', 'dev-1', { name: 'slow', timeoutMs: 100 });
    assert.equal(r.status, 'timeout');
    const code = async (p: Promise<unknown>) =>
      p.then(
        () => 'ok',
        (e: unknown) => (isAppError(e) ? e.code : String(e)),
      );
    assert.equal(await code(svc.send('t', 'dev-1', { name: 'result' })), 'ERR_COMMAND_INVALID_NAME');
    assert.equal(await code(svc.send('t', 'dev-1', { name: 'a/b' })), 'ERR_COMMAND_INVALID_NAME');
    assert.equal(
      await code(svc.send('t', 'dev-1', { name: 'x', payload: 'y'.repeat(70_000) })),
      'ERR_COMMAND_TOO_LARGE',
    );
    connected = false;
    assert.equal(await code(svc.send('t', 'dev-1', { name: 'x' })), 'ERR_COMMAND_DEVICE_OFFLINE');
    connected = true;
    const waiting = Array.from({ length: 16 }, () => svc.send('t', 'dev-9', { name: 'x', timeoutMs: 200 }));
    assert.equal(await code(svc.send('t', 'dev-9', { name: 'x' })), 'ERR_COMMAND_TOO_MANY');
    svc.close();
    assert.deepEqual(new Set((await Promise.all(waiting)).map((o) => o.status)), new Set(['timeout']));
  });
});
