// Stored policies on both backends: versions and audit history, optimistic updates, attachments, and the
// change feed that lets a second node (same database) follow every change.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { backends } from '../../../test/support/db.ts';
import { fixedClock, isAppError } from '../src/kernel/index.ts';
import {
  createPolicyService,
  createPolicyStore,
  resourceName,
  type PolicyChange,
  type PolicyDirectory,
  type Principal,
} from '../src/modules/policy/index.ts';

const directory: PolicyDirectory = {
  device: async (_t, id) => ({ id, fleet: 'plant-a/line-3', groups: ['cams'], attributes: {} }),
  devicesIn: async () => [],
  targetExists: async (_t, _type, id) => id !== 'missing',
  account: async () => undefined,
};
const publishAll = {
  id: 'broadcast',
  description: 'Devices may publish to the plant broadcast topic',
  statements: [
    { sid: 'pub', effect: 'allow', actions: ['mqtt:publish'], resources: ['topic/plant/broadcast'] },
  ],
};
const dev: Principal = {
  type: 'device',
  id: 'cam-1',
  tenant: 't1',
  fleet: 'plant-a/line-3',
  groups: ['cams'],
};
const broadcast = resourceName('t1', 'topic', 'plant/broadcast');
const rejectsWith = (p: Promise<unknown>, code: string) =>
  assert.rejects(p, (e: unknown) => isAppError(e) && e.code === code);

for (const backend of backends) {
  describe(`policy store and service (${backend.name})`, { skip: backend.skip }, () => {
    test('create, version, attach at a fleet, inherit below it, detach, delete', async () => {
      const { db, cleanup } = await backend.open();
      try {
        const clock = fixedClock(1_000);
        const svc = createPolicyService({ store: createPolicyStore(db), directory, clock, nodeId: 'n1' });
        await svc.load();
        const actor = { tenant: 't1', id: 'admin-1' };
        const created = await svc.create(actor, publishAll);
        assert.equal(created.version, 1);
        await rejectsWith(svc.create(actor, publishAll), 'ERR_POLICY_EXISTS');
        assert.equal(svc.authorize(dev, 'mqtt:publish', broadcast).allowed, false, 'not attached yet');

        const changes: PolicyChange[] = [];
        svc.onChange((c) => changes.push(c));
        await svc.attach(actor, 'broadcast', { type: 'fleet', id: 'plant-a' });
        await rejectsWith(
          svc.attach(actor, 'broadcast', { type: 'fleet', id: 'plant-a' }),
          'ERR_POLICY_ALREADY_ATTACHED',
        );
        await rejectsWith(
          svc.attach(actor, 'broadcast', { type: 'fleet', id: 'missing' }),
          'ERR_POLICY_TARGET_NOT_FOUND',
        );
        await rejectsWith(
          svc.attach(actor, 'broadcast', { type: 'platform', id: '*' }),
          'ERR_POLICY_PLATFORM_ONLY',
        );
        await rejectsWith(
          svc.attach(actor, 'builtin:quarantine', { type: 'fleet', id: 'plant-a' }),
          'ERR_POLICY_BUILTIN',
        );
        assert.deepEqual(
          changes.map((c) => [c.scope, c.reason]),
          [[{ kind: 'fleet', path: 'plant-a' }, 'policy.attach']],
        );
        assert.equal(svc.authorize(dev, 'mqtt:publish', broadcast).allowed, true, 'inherited from plant-a');
        assert.equal(
          svc.authorize({ ...dev, fleet: 'plant-b' }, 'mqtt:publish', broadcast).allowed,
          false,
          'another fleet',
        );
        assert.equal(
          svc.authorize({ ...dev, fleet: 'plant-ab' }, 'mqtt:publish', broadcast).allowed,
          false,
          'a fleet whose name starts the same is not below it',
        );

        clock.advance(10);
        const v2 = await svc.update(
          { tenant: 't1', id: 'admin-2' },
          'broadcast',
          { ...publishAll, statements: [{ ...publishAll.statements[0], effect: 'deny' }] },
          1,
        );
        assert.equal(v2.version, 2);
        await rejectsWith(svc.update(actor, 'broadcast', publishAll, 1), 'ERR_POLICY_VERSION_CONFLICT');
        assert.equal(svc.authorize(dev, 'mqtt:publish', broadcast).allowed, false, 'tightened');
        assert.equal(changes.at(-1)?.reason, 'policy.update');

        await rejectsWith(svc.remove(actor, 'broadcast'), 'ERR_POLICY_ATTACHED');
        await svc.detach(actor, 'broadcast', { type: 'fleet', id: 'plant-a' });
        await rejectsWith(
          svc.detach(actor, 'broadcast', { type: 'fleet', id: 'plant-a' }),
          'ERR_POLICY_NOT_ATTACHED',
        );
        await svc.remove(actor, 'broadcast');
        await rejectsWith(
          Promise.resolve().then(() => svc.get('t1', 'broadcast')),
          'ERR_POLICY_NOT_FOUND',
        );
        const history = await svc.versions('t1', 'broadcast');
        assert.deepEqual(
          history.map((v) => [
            v.version,
            v.document === null ? 'deleted' : v.document.statements[0]?.effect,
            v.createdBy,
          ]),
          [
            [3, 'deleted', 'admin-1'],
            [2, 'deny', 'admin-2'],
            [1, 'allow', 'admin-1'],
          ],
        );
        // The id may be reused; the history goes on.
        assert.equal((await svc.create(actor, publishAll)).version, 4);
        assert.equal(svc.list('t2').filter((p) => !p.builtin).length, 0, 'tenants do not see each other');
      } finally {
        await cleanup();
      }
    });

    test('a second node sharing the database follows changes through the feed', async () => {
      const { db, cleanup } = await backend.open();
      try {
        const a = createPolicyService({ store: createPolicyStore(db), directory, nodeId: 'a' });
        const b = createPolicyService({ store: createPolicyStore(db), directory, nodeId: 'b' });
        await a.load();
        await b.load();
        const seen: PolicyChange[] = [];
        b.onChange((c) => seen.push(c));
        const actor = { tenant: 't1', id: 'admin' };
        await a.create(actor, publishAll);
        await a.attach(actor, 'broadcast', { type: 'group', id: 'cams' });
        assert.equal(b.authorize(dev, 'mqtt:publish', broadcast).allowed, false, 'b has not synced yet');
        assert.equal(await b.sync(), 1);
        assert.equal(b.authorize(dev, 'mqtt:publish', broadcast).allowed, true);
        assert.deepEqual(
          seen.map((c) => c.scope),
          [{ kind: 'group', name: 'cams' }],
        );
        assert.equal(b.affects(seen[0]!, dev), true);
        assert.equal(b.affects(seen[0]!, { ...dev, groups: [] }), false);
        await a.notify({
          tenant: 't1',
          scope: { kind: 'devices', ids: ['cam-1'] },
          reason: 'device.move',
          placementChanged: true,
        });
        assert.equal(await b.sync(), 1);
        assert.equal(seen.at(-1)?.placementChanged, true);
        assert.equal(await a.sync(), 0, 'a node does not replay its own changes');
      } finally {
        await cleanup();
      }
    });
  });
}
