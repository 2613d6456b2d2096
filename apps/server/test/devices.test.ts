import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { backends } from '../../../test/support/db.ts';
import { fixedClock, isAppError } from '../src/kernel/index.ts';
import { createDeviceService, createDeviceStore } from '../src/modules/devices/index.ts';
import { createAuditService, createAuditStore } from '../src/modules/audit/index.ts';
import { silentLogger } from '../src/kernel/index.ts';

for (const backend of backends) {
  describe(`devices and audit (${backend.name})`, { skip: backend.skip }, () => {
    test('create, get, list with paging, disable, delete', async () => {
      const { db, cleanup } = await backend.open();
      try {
        const clock = fixedClock(1_000);
        const svc = createDeviceService({ store: createDeviceStore(db), clock });
        const events: string[] = [];
        svc.onEvent((e) => events.push(`${e.type}:${'deviceId' in e ? e.deviceId : ''}`));
        for (let i = 0; i < 7; i++) {
          await svc.create('t1', `dev-${i}`, { hw: 'rev-b' });
          clock.advance(i % 2);
        }
        await svc.create('t2', 'other-0');
        const seen: string[] = [];
        let cursor: string | undefined;
        do {
          const page = await svc.list('t1', { limit: 3, ...(cursor ? { cursor } : {}) });
          seen.push(...page.items.map((d) => d.id));
          cursor = page.nextCursor ?? undefined;
        } while (cursor);
        assert.deepEqual(seen, ['dev-0', 'dev-1', 'dev-2', 'dev-3', 'dev-4', 'dev-5', 'dev-6']);
        assert.deepEqual((await svc.get('t1', 'dev-3')).attributes, { hw: 'rev-b' });
        assert.equal((await svc.disable('t1', 'dev-3')).status, 'disabled');
        assert.equal((await svc.enable('t1', 'dev-3')).status, 'active');
        await svc.delete('t1', 'dev-3');
        await assert.rejects(
          svc.get('t1', 'dev-3'),
          (e) => isAppError(e) && e.code === 'ERR_DEVICE_NOT_FOUND',
        );
        assert.equal((await svc.get('t2', 'other-0')).tenant, 't2');
        // Device ids are one namespace platform-wide (MQTT client ids and topics are global): another
        // tenant cannot register an id in use, so it can never take over or eavesdrop on that device.
        await assert.rejects(
          svc.create('t2', 'dev-0'),
          (e) => isAppError(e) && e.code === 'ERR_DEVICE_EXISTS',
        );
        await assert.rejects(
          svc.get('t2', 'dev-0'),
          (e) => isAppError(e) && e.code === 'ERR_DEVICE_NOT_FOUND',
        );
        assert.ok(events.includes('disabled:dev-3') && events.includes('deleted:dev-3'));
      } finally {
        await cleanup();
      }
    });

    test('refusals: duplicate id, invalid id, bad attributes, unknown device', async () => {
      const { db, cleanup } = await backend.open();
      try {
        const svc = createDeviceService({ store: createDeviceStore(db), clock: fixedClock(0) });
        await svc.create('t1', 'a');
        await assert.rejects(svc.create('t1', 'a'), (e) => isAppError(e) && e.code === 'ERR_DEVICE_EXISTS');
        for (const id of ['', '-a', 'a/b', 'a b', 'a+', 'a#', 'x'.repeat(129), 'é']) {
          await assert.rejects(
            svc.create('t1', id),
            (e) => isAppError(e) && e.code === 'ERR_DEVICE_INVALID_ID',
            id,
          );
        }
        await assert.rejects(
          svc.create('t1', 'b', { 'bad key': 'x' }),
          (e) => isAppError(e) && e.code === 'ERR_VALIDATION',
        );
        await assert.rejects(
          svc.disable('t1', 'nope'),
          (e) => isAppError(e) && e.code === 'ERR_DEVICE_NOT_FOUND',
        );
        assert.equal(
          (await db.all("SELECT * FROM devices WHERE id = 'b'")).length,
          0,
          'a failed request changes nothing',
        );
      } finally {
        await cleanup();
      }
    });

    test('audit log: append-only entries, newest first, per tenant', async () => {
      const { db, cleanup } = await backend.open();
      try {
        const audit = createAuditService({
          store: createAuditStore(db),
          clock: fixedClock(5),
          logger: silentLogger,
        });
        await audit.record({
          tenant: 't1',
          actor: { type: 'user', id: 'u' },
          action: 'device.create',
          target: { type: 'device', id: 'a' },
          outcome: 'success',
        });
        audit.recordLater({
          tenant: 't1',
          actor: { type: 'device', id: 'a' },
          action: 'mqtt.publish',
          outcome: 'denied',
          reason: 'policy',
          source: '127.0.0.1',
        });
        audit.recordLater({
          tenant: 't2',
          actor: { type: 'device', id: 'b' },
          action: 'mqtt.connect',
          outcome: 'denied',
        });
        await audit.flush();
        const page = await audit.list('t1');
        assert.deepEqual(
          page.items.map((e) => e.action),
          ['mqtt.publish', 'device.create'],
        );
        assert.equal(page.items[0]?.source, '127.0.0.1');
        const one = await audit.list('t1', { limit: 1 });
        assert.ok(one.nextCursor);
        const next = await audit.list('t1', { limit: 1, cursor: one.nextCursor });
        assert.equal(next.items[0]?.action, 'device.create');
      } finally {
        await cleanup();
      }
    });
  });
}
