// The OTA store on every backend (SQLite, PostgreSQL): releases, pending signatures, campaigns and their
// device assignments (claiming, counters, bulk transitions), busy devices, latest capability reports.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { backends } from '../../../test/support/db.ts';
import type { Db } from '../src/kernel/index.ts';
import {
  createOtaStore,
  DEFAULT_PLAN,
  type Assignment,
  type Campaign,
  type Release,
} from '../src/modules/ota/index.ts';

const release = (id: string, version: string): Release => ({
  tenant: 't1',
  id,
  name: 'fw',
  version,
  kind: 'firmware',
  targetPath: `fw/${version}`,
  sha256: 'a'.repeat(64),
  size: 10,
  hardware: ['hw'],
  sbom: null,
  allowDowngrade: false,
  notes: '',
  state: 'unsigned',
  createdBy: 'me',
  createdAt: 1,
  publishedAt: null,
});

const assignment = (deviceId: string, wave: number, ord: number): Assignment => ({
  deviceId,
  wave,
  ord,
  state: wave < 0 ? 'excluded' : 'pending',
  reason: wave < 0 ? 'no capability report' : null,
  fromVersion: '1.0.0',
  version: null,
  health: null,
  progress: null,
  notifiedAt: null,
  updatedAt: 1,
});

for (const backend of backends) {
  describe(`OTA store on ${backend.name}`, { skip: backend.skip }, () => {
    let db: Db;
    let cleanup: () => Promise<void>;
    const store = () => createOtaStore(db);
    before(async () => {
      const o = await backend.open();
      db = o.db;
      cleanup = o.cleanup;
    });
    after(async () => cleanup?.());

    test('releases: unique per name and version, published by target path', async () => {
      const s = store();
      await s.insertRelease(release('r1', '1.0.0'));
      await assert.rejects(s.insertRelease(release('r2', '1.0.0')), { code: 'ERR_RELEASE_EXISTS' });
      await s.insertRelease(release('r3', '1.1.0'));
      await s.publishReleases('t1', ['fw/1.1.0'], 5);
      assert.equal((await s.getRelease('t1', 'r3'))?.state, 'published');
      assert.equal((await s.getRelease('t1', 'r1'))?.state, 'unsigned');
      assert.equal((await s.releaseWithBlob('t1', 'a'.repeat(64)))?.id, 'r3');
      assert.equal((await s.releasesForTargets('t1')).length, 2);
      assert.equal(await s.getRelease('t2', 'r1'), undefined);
    });

    test('pending metadata: signatures collected against one digest', async () => {
      const s = store();
      await s.setPending('t1', {
        role: 'targets',
        version: 2,
        signed: '{}',
        digest: 'd1',
        signatures: [],
        createdAt: 1,
      });
      assert.equal(await s.setPendingSignatures('t1', 'targets', 'other', [{ keyid: 'k', sig: 's' }]), false);
      assert.equal(await s.setPendingSignatures('t1', 'targets', 'd1', [{ keyid: 'k', sig: 's' }]), true);
      assert.deepEqual((await s.pending('t1'))[0]?.signatures, [{ keyid: 'k', sig: 's' }]);
      await s.setPending('t1', {
        role: 'targets',
        version: 2,
        signed: '{"a":1}',
        digest: 'd2',
        signatures: [],
        createdAt: 2,
      });
      assert.equal((await s.pending('t1')).length, 1);
      assert.equal(await s.deletePending('t1', 'targets', 'd1'), false);
      assert.equal(await s.deletePending('t1', 'targets', 'd2'), true);
    });

    test('campaigns: claim in wave order, counters, compare-and-set, bulk transitions', async () => {
      const s = store();
      const c: Campaign = {
        tenant: 't1',
        id: 'c1',
        name: 'n',
        releaseId: 'r3',
        target: { type: 'fleet', fleet: '' },
        plan: DEFAULT_PLAN,
        state: 'running',
        stateReason: null,
        wave: 0,
        waveCount: 2,
        approvedWave: 0,
        failuresAcknowledged: 0,
        total: 5,
        excluded: 1,
        revision: 1,
        createdBy: 'me',
        createdAt: 1,
        updatedAt: 1,
      };
      await s.insertCampaign(c, [
        assignment('d1', 0, 0),
        assignment('d2', 0, 1),
        assignment('d3', 1, 2),
        assignment('d4', 1, 3),
        assignment('d5', 1, 4),
        assignment('x1', -1, -1),
      ]);
      const first = await s.claimPending('t1', 'c1', 0, 1, 100);
      assert.deepEqual(
        first.map((a) => [a.deviceId, a.state]),
        [['d1', 'notified']],
      );
      assert.equal((await s.claimPending('t1', 'c1', 0, 10, 100)).length, 1);
      assert.equal((await s.claimPending('t1', 'c1', 0, 10, 100)).length, 0);
      assert.equal(await s.countNotifiedSince('t1', 'c1', 100), 2);
      assert.equal(await s.countInProgress('t1', 'c1'), 2);
      assert.equal(
        await s.updateAssignment(
          't1',
          'c1',
          'd1',
          ['notified'],
          { state: 'succeeded', version: '1.1.0' },
          101,
        ),
        true,
      );
      assert.equal(await s.updateAssignment('t1', 'c1', 'd1', ['notified'], { state: 'failed' }, 102), false);
      assert.deepEqual(await s.waveCounts('t1', 'c1', 0), {
        total: 2,
        pending: 0,
        active: 1,
        succeeded: 1,
        failed: 0,
        cancelled: 0,
      });
      assert.deepEqual(
        (await s.overdue('t1', 'c1', 101, 10)).map((a) => a.deviceId),
        ['d2'],
      );
      assert.deepEqual(await s.busyDevices('t1', ['d1', 'd2', 'd3', 'x1', 'zz']), new Set(['d2', 'd3']));
      assert.deepEqual(await s.busyDevices('t1', ['d2'], 'c1'), new Set());
      assert.equal(await s.updateCampaign({ ...c, state: 'paused', revision: 2 }, 1), true);
      assert.equal(await s.updateCampaign({ ...c, state: 'running', revision: 2 }, 1), false);
      assert.deepEqual((await s.bulkState('t1', 'c1', ['pending'], 'cancelled', 'stop', 200)).sort(), [
        'd3',
        'd4',
        'd5',
      ]);
      assert.deepEqual(await s.countByState('t1', 'c1'), {
        cancelled: 3,
        excluded: 1,
        notified: 1,
        succeeded: 1,
      });
      assert.deepEqual(await s.activeCampaigns(), [{ tenant: 't1', id: 'c1' }]);
    });
  });
}
