// Fleets (nested paths), device moves, static and dynamic groups, on both backends; the dynamic-group
// query language with a table of malformed queries.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { backends } from '../../../test/support/db.ts';
import { fixedClock, isAppError } from '../src/kernel/index.ts';
import {
  compareVersions,
  createDeviceService,
  createDeviceStore,
  matchesQuery,
  parseQuery,
  type DeviceEvent,
} from '../src/modules/devices/index.ts';

const rejectsWith = (p: Promise<unknown>, code: string) =>
  assert.rejects(p, (e: unknown) => isAppError(e) && e.code === code);

describe('dynamic group queries', () => {
  const dev = {
    id: 'cam-7',
    status: 'active',
    fleet: 'plant-a/line-3',
    attributes: { hw: 'B', fw: '2.10.1', tags: 'gps, camera', site: 'lyon' },
  };
  const cases: [string, boolean][] = [
    ['attr.hw = B', true],
    ['attr.hw = "B" and attr.fw >= 2.9', true],
    ['attr.fw < 2.9.0', false],
    ['attr.fw > 2.10', true],
    ['attr.tags contains camera and not attr.tags contains lidar', true],
    ['fleet under plant-a', true],
    ['fleet under plant', false],
    ['fleet = plant-a', false],
    ['attr.site in (paris, lyon)', true],
    ['has attr.site and not has attr.missing', true],
    ['attr.missing != x', false],
    ['(attr.hw = A or attr.hw = B) and status = active', true],
    ['id startswith cam-', true],
    ["attr.site = 'l\\'yon' or attr.site = lyon", true],
  ];
  for (const [q, want] of cases)
    test(`${q} -> ${want}`, () => assert.equal(matchesQuery(parseQuery(q), dev), want));

  const malformed: [string, RegExp][] = [
    ['', /empty/],
    ['attr.hw', /end of query/],
    ['attr.hw = ', /end of query/],
    ['hw = B', /unknown field 'hw'/],
    ['attr.hw ~ B', /unexpected character '~'/],
    ['attr.hw ! B', /'!='/],
    ['attr.hw = B and', /end of query/],
    ['attr.hw = B or or attr.x = 1', /expected a field/],
    ['(attr.hw = B', /end of query/],
    ['attr.hw = B)', /unexpected '\)'/],
    ['attr.hw in (A B)', /expected ',' or '\)'/],
    ['attr.hw under x', /fleet only/],
    ['attr.hw = "unterminated', /unterminated string/],
    ['attr.hw = and', /expected a value/],
    ['not '.repeat(40) + 'has attr.x', /deeper than 32/],
    ['attr.x = ' + 'y'.repeat(3000), /longer than 2048/],
  ];
  for (const [q, message] of malformed) {
    test(`refuses ${JSON.stringify(q.slice(0, 40))}`, () =>
      assert.throws(
        () => parseQuery(q),
        (e: unknown) => isAppError(e) && e.code === 'ERR_GROUP_QUERY_INVALID' && message.test(e.message),
      ));
  }
  test('version comparison', () => {
    assert.equal(compareVersions('2.10.0', '2.9.1'), 1);
    assert.equal(compareVersions('1.0', '1.0.0'), -1);
    assert.equal(compareVersions('1.0.0-rc1', '1.0.0-rc2'), -1);
    assert.equal(compareVersions('3', '3'), 0);
  });
});

for (const backend of backends) {
  describe(`fleets and groups (${backend.name})`, { skip: backend.skip }, () => {
    test('nested fleets, moves, and what cannot be deleted', async () => {
      const { db, cleanup } = await backend.open();
      try {
        const svc = createDeviceService({ store: createDeviceStore(db), clock: fixedClock(1_000) });
        const events: DeviceEvent[] = [];
        svc.onEvent((e) => events.push(e));
        await rejectsWith(svc.createFleet('t1', 'plant-a/line-3'), 'ERR_FLEET_PARENT_NOT_FOUND');
        for (const bad of ['Plant', 'a//b', '/a', 'a/', 'a b', 'a/+', 'a/#', '../x', 'a/'.repeat(8) + 'b'])
          await rejectsWith(svc.createFleet('t1', bad), 'ERR_FLEET_INVALID_PATH');
        await svc.createFleet('t1', 'plant-a', 'Plant A');
        await svc.createFleet('t1', 'plant-a/line-3');
        await svc.createFleet('t1', 'plant-a/line_3');
        await svc.createFleet('t1', 'plant-b');
        await rejectsWith(svc.createFleet('t1', 'plant-a'), 'ERR_FLEET_EXISTS');
        await svc.createFleet('t2', 'plant-a');

        await svc.create('t1', 'r1', { hw: 'B' }, 'plant-a/line-3');
        await rejectsWith(svc.create('t1', 'r2', {}, 'plant-z'), 'ERR_FLEET_NOT_FOUND');
        await svc.create('t1', 'r2');
        assert.equal((await svc.get('t1', 'r2')).fleet, '');
        const moved = await svc.move('t1', 'r2', 'plant-a');
        assert.equal(moved.fleet, 'plant-a');
        assert.deepEqual(events.at(-1), {
          type: 'placement',
          tenant: 't1',
          reason: 'device.move',
          deviceIds: ['r2'],
        });
        await rejectsWith(svc.move('t1', 'r2', 'plant-q'), 'ERR_FLEET_NOT_FOUND');

        const under = await svc.listFleets('t1', { under: 'plant-a' });
        assert.deepEqual(
          under.items.map((f) => f.path),
          ['plant-a', 'plant-a/line-3', 'plant-a/line_3'],
          '`_` in a path is not a wildcard',
        );
        const subtree = await svc.scan('t1', { limit: 10, fleet: 'plant-a', subtree: true });
        assert.deepEqual(
          subtree.map((d) => d.device.id),
          ['r1', 'r2'],
        );
        assert.deepEqual(
          (await svc.scan('t1', { limit: 10, fleet: 'plant-a/line_3', subtree: true })).length,
          0,
        );
        assert.deepEqual(await svc.getFleet('t1', 'plant-a').then((f) => [f.devices, f.fleets]), [1, 2]);

        await rejectsWith(svc.deleteFleet('t1', 'plant-a'), 'ERR_FLEET_NOT_EMPTY');
        await rejectsWith(
          svc.deleteFleet('t1', 'plant-b', async () => 'policy p attached'),
          'ERR_FLEET_NOT_EMPTY',
        );
        await svc.deleteFleet('t1', 'plant-b');
        await rejectsWith(svc.getFleet('t1', 'plant-b'), 'ERR_FLEET_NOT_FOUND');
        const page1 = await svc.listFleets('t1', { limit: 2 });
        const page2 = await svc.listFleets('t1', { limit: 2, cursor: page1.nextCursor ?? '' });
        assert.deepEqual(
          [...page1.items, ...page2.items].map((f) => f.path),
          ['plant-a', 'plant-a/line-3', 'plant-a/line_3'],
        );
      } finally {
        await cleanup();
      }
    });

    test('static groups, the quarantine group, and dynamic groups kept current', async () => {
      const { db, cleanup } = await backend.open();
      try {
        const svc = createDeviceService({ store: createDeviceStore(db), clock: fixedClock(1_000) });
        const events: DeviceEvent[] = [];
        svc.onEvent((e) => events.push(e));
        await svc.createFleet('t1', 'plant-a');
        for (let i = 0; i < 5; i++)
          await svc.create('t1', `d${i}`, { fw: `2.${i}.0`, tags: i % 2 ? 'gps' : 'cam' });

        const old = await svc.createGroup('t1', { name: 'old-fw', kind: 'dynamic', query: 'attr.fw < 2.3' });
        assert.equal(old.members, 3);
        assert.deepEqual(events.at(-1), {
          type: 'placement',
          tenant: 't1',
          reason: 'group.create',
          deviceIds: ['d0', 'd1', 'd2'],
        });
        await rejectsWith(
          svc.createGroup('t1', { name: 'x', kind: 'dynamic', query: 'attr.fw <' }),
          'ERR_GROUP_QUERY_INVALID',
        );
        await rejectsWith(svc.createGroup('t1', { name: 'x', kind: 'dynamic' }), 'ERR_GROUP_QUERY_INVALID');
        await rejectsWith(
          svc.createGroup('t1', { name: 'Bad Name', kind: 'static' }),
          'ERR_GROUP_INVALID_NAME',
        );
        await rejectsWith(svc.createGroup('t1', { name: 'quarantine', kind: 'static' }), 'ERR_GROUP_EXISTS');
        await rejectsWith(svc.addToGroup('t1', 'old-fw', ['d4']), 'ERR_GROUP_DYNAMIC');

        // An attribute change moves a device in and out of dynamic groups, and says so.
        await svc.updateAttributes('t1', 'd1', { fw: '3.0.0' });
        assert.deepEqual((await svc.placement('t1', 'd1'))?.groups, []);
        assert.deepEqual(events.at(-1), {
          type: 'placement',
          tenant: 't1',
          reason: 'device.update',
          deviceIds: ['d1'],
        });
        await svc.create('t1', 'd9', { fw: '1.0' });
        assert.deepEqual((await svc.placement('t1', 'd9'))?.groups, ['old-fw']);
        await svc.updateAttributes('t1', 'd9', { fw: null, tags: 'gps' });
        assert.deepEqual((await svc.get('t1', 'd9')).attributes, { tags: 'gps' });
        assert.deepEqual((await svc.placement('t1', 'd9'))?.groups, []);

        // A query change recomputes the members.
        const gps = await svc.updateGroup('t1', 'old-fw', { query: 'attr.tags contains gps' });
        assert.equal(gps.members, 3);
        assert.deepEqual((await svc.listMembers('t1', 'old-fw')).items, ['d1', 'd3', 'd9']);
        // Fleet moves count for queries on fleet.
        await svc.createGroup('t1', { name: 'in-a', kind: 'dynamic', query: 'fleet under plant-a' });
        await svc.move('t1', 'd0', 'plant-a');
        assert.deepEqual((await svc.placement('t1', 'd0'))?.groups, ['in-a']);

        // Static groups and quarantine.
        await svc.createGroup('t1', { name: 'pilot', kind: 'static' });
        assert.deepEqual(await svc.addToGroup('t1', 'pilot', ['d0', 'd2']), ['d0', 'd2']);
        assert.deepEqual(await svc.addToGroup('t1', 'pilot', ['d0']), [], 'idempotent');
        await rejectsWith(svc.addToGroup('t1', 'pilot', ['nope']), 'ERR_DEVICE_NOT_FOUND');
        assert.deepEqual(await svc.addToGroup('t1', 'quarantine', ['d2']), ['d2']);
        assert.deepEqual(events.at(-1), {
          type: 'placement',
          tenant: 't1',
          reason: 'device.quarantine',
          deviceIds: ['d2'],
        });
        assert.deepEqual((await svc.placement('t1', 'd2'))?.groups, ['pilot', 'quarantine']);
        assert.ok(
          (await svc.listGroups('t1')).some((g) => g.name === 'quarantine' && g.builtin && g.members === 1),
        );
        await rejectsWith(svc.deleteGroup('t1', 'quarantine'), 'ERR_GROUP_BUILTIN');
        await rejectsWith(
          svc.deleteGroup('t1', 'pilot', async () => 'policy attached'),
          'ERR_GROUP_IN_USE',
        );
        await svc.deleteGroup('t1', 'pilot');
        assert.deepEqual(events.at(-1), {
          type: 'placement',
          tenant: 't1',
          reason: 'group.delete',
          group: 'pilot',
        });
        assert.deepEqual((await svc.placement('t1', 'd2'))?.groups, ['quarantine']);
        assert.deepEqual(await svc.removeFromGroup('t1', 'quarantine', ['d2']), ['d2']);
        await svc.delete('t1', 'd3');
        assert.deepEqual(
          (await svc.listMembers('t1', 'old-fw')).items,
          ['d1', 'd9'],
          'deleted devices leave groups',
        );
        assert.equal((await svc.listGroups('t2')).length, 1, 'only the built-in group in another tenant');
      } finally {
        await cleanup();
      }
    });
  });
}
