// Safe remote updates at fleet scale (Bulwark only, no Mosquitto counterpart):
//  - campaign creation with 100 000 targeted devices (10 000 with --quick) on a SQLite file: target
//    resolution, eligibility from each device's capability profile, wave assignment, one insert per
//    device: assignments per second;
//  - the scheduler notifying them (claim + notice per device; notices go to a counting stub, so this is
//    the scheduler's own cost, not the broker's): notifications per second; and progress reports
//    (succeeded) handled per second;
//  - artifact download throughput from the device-facing TUF repository over mutual TLS (one device,
//    sequential and 4 in parallel), and a resumed (Range) download.
import 'reflect-metadata';
import { performance } from 'node:perf_hooks';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { request, Agent } from 'node:https';
import { Readable } from 'node:stream';
import { openDatabase } from '../../apps/server/src/infra/database/index.ts';
import { createKeyProtector } from '../../apps/server/src/infra/keys/index.ts';
import { createFsBlobStore } from '../../apps/server/src/infra/blobs/index.ts';
import { fixedClock, silentLogger, type Db, type SqlValue } from '../../apps/server/src/kernel/index.ts';
import { createAuditService, createAuditStore } from '../../apps/server/src/modules/audit/index.ts';
import { createCommandsStore } from '../../apps/server/src/modules/commands/index.ts';
import { createDeviceService, createDeviceStore } from '../../apps/server/src/modules/devices/index.ts';
import {
  createCampaignService,
  createOtaStore,
  createRepositoryService,
} from '../../apps/server/src/modules/ota/index.ts';
import { enrollDevice, startPlatform } from '../../test/support/platform.ts';
import type { Suite, SuiteContext } from '../lib/types.ts';

const TENANT = 'bench';
const round = (x: number, d = 0) => Math.round(x * 10 ** d) / 10 ** d;

async function insertMany(db: Db, table: string, columns: string[], rows: SqlValue[][]): Promise<void> {
  const per = Math.floor(900 / columns.length);
  await db.transaction(async (tx) => {
    for (let i = 0; i < rows.length; i += per) {
      const chunk = rows.slice(i, i + per);
      const values = chunk.map(() => `(${columns.map(() => '?').join(', ')})`).join(', ');
      await tx.run(`INSERT INTO ${table} (${columns.join(', ')}) VALUES ${values}`, chunk.flat());
    }
  });
}

async function scheduler(ctx: SuiteContext, total: number): Promise<Record<string, unknown>> {
  const db = await openDatabase({ url: `sqlite:${join(ctx.tmpDir, 'ota-bench.db')}` });
  try {
    const clock = fixedClock(Date.UTC(2026, 0, 5, 12));
    const audit = createAuditService({ store: createAuditStore(db), clock, logger: silentLogger });
    const devices = createDeviceService({ store: createDeviceStore(db), clock });
    const store = createOtaStore(db);
    const repository = createRepositoryService({
      store,
      blobs: createFsBlobStore(join(ctx.tmpDir, 'ota-blobs')),
      keys: await createKeyProtector({ base64: randomBytes(32).toString('base64') }),
      clock,
      audit,
      logger: silentLogger,
      options: { signing: 'online' },
    });
    let notices = 0;
    const capabilityStore = createCommandsStore(db);
    const campaigns = createCampaignService({
      store,
      repository,
      devices,
      audit,
      clock,
      logger: silentLogger,
      publish: async () => void notices++,
      capabilities: (t, ids) => capabilityStore.latestCapabilitiesOf(t, ids),
    });
    ctx.log(`ota: ${total} devices with capability profiles (5% incompatible, 2% not updatable)`);
    const ids = Array.from({ length: total }, (_, i) => `dev-${String(i).padStart(7, '0')}`);
    await insertMany(
      db,
      'devices',
      ['tenant_id', 'id', 'status', 'attributes', 'fleet', 'created_at', 'updated_at'],
      ids.map((id) => [TENANT, id, 'active', '{"site":"a"}', 'plant', 0, 0]),
    );
    await insertMany(
      db,
      'fleets',
      ['tenant_id', 'path', 'parent', 'description', 'created_at', 'updated_at'],
      [[TENANT, 'plant', '', '', 0, 0]],
    );
    await insertMany(
      db,
      'device_capabilities',
      ['tenant_id', 'device_id', 'version', 'data', 'digest', 'reported_at'],
      ids.map((id, i) => [
        TENANT,
        id,
        1,
        JSON.stringify({
          hardware: { model: i % 20 === 0 ? 'legacy' : 'gw-2' },
          firmware: { version: '1.0.0' },
          updateMethod: i % 50 === 1 ? 'none' : 'ab-partition',
        }),
        String(i),
        0,
      ]),
    );
    const artifact = await repository.uploadArtifact(TENANT, Readable.from([randomBytes(1024)]));
    const release = await repository.createRelease(
      TENANT,
      { type: 'user', id: 'bench' },
      {
        name: 'gw-fw',
        version: '2.0.0',
        kind: 'firmware',
        artifact: artifact.sha256,
        hardware: ['gw-2'],
        allowDowngrade: false,
        notes: '',
      },
    );

    ctx.log('ota: creating the campaign (eligibility, waves, assignments)');
    const actor = { type: 'user' as const, id: 'bench' };
    let t0 = performance.now();
    // maxConcurrent 1: creation notifies one device only, so this times eligibility + assignment.
    const created = await campaigns.create(TENANT, actor, {
      name: 'bench',
      release: release.id,
      target: { fleet: 'plant' },
      plan: {
        waves: [{ percent: 100 }],
        maxConcurrent: 1,
        ratePerMinute: 1_000_000,
        failureThresholdPercent: 100,
      },
    });
    const createMs = performance.now() - t0;
    const id = created.campaign?.id ?? '';
    ctx.log('ota: notifying every eligible device');
    await db.run('UPDATE ota_campaigns SET plan = ? WHERE id = ?', [
      JSON.stringify({ ...created.campaign?.plan, maxConcurrent: 1_000_000 }),
      id,
    ]);
    notices = 0;
    t0 = performance.now();
    await campaigns.evaluate(TENANT, id);
    const notifyMs = performance.now() - t0;
    const notified = notices;
    ctx.log('ota: handling progress reports');
    const reports = Math.min(20_000, created.eligible);
    const sample: string[] = [];
    for (let cursor: string | undefined = undefined; sample.length < reports;) {
      const pg = await campaigns.devices(TENANT, id, {
        limit: 1000,
        state: 'notified',
        ...(cursor ? { cursor } : {}),
      });
      sample.push(...pg.items.map((x) => x.deviceId));
      if (!pg.nextCursor) break;
      cursor = pg.nextCursor;
    }
    const payload = Buffer.from(JSON.stringify({ campaign: id, state: 'succeeded', version: '2.0.0' }));
    t0 = performance.now();
    for (let i = 0; i < sample.length; i += 100)
      await Promise.all(sample.slice(i, i + 100).map((d) => campaigns.report(TENANT, d, payload)));
    await campaigns.idle();
    const reportMs = performance.now() - t0;
    campaigns.close();
    await audit.flush();
    return {
      devicesTargeted: total,
      eligible: created.eligible,
      excluded: created.excludedCount,
      createMs: round(createMs),
      assignmentsPerSecond: round((total / createMs) * 1000),
      notifications: notified,
      notifyMs: round(notifyMs),
      notificationsPerSecond: round((notified / notifyMs) * 1000),
      reports: sample.length,
      reportsPerSecond: round((sample.length / reportMs) * 1000),
    };
  } finally {
    await db.close();
  }
}

async function download(ctx: SuiteContext, mib: number): Promise<Record<string, unknown>> {
  ctx.log(`ota: download throughput (${mib} MiB artifact, mutual TLS)`);
  const p = await startPlatform({
    env: { BULWARK_OTA_SIGNING: 'online', BULWARK_OTA_MAX_ARTIFACT_BYTES: String(1 << 30) },
  });
  try {
    const dev = await enrollDevice(p, 'bench-dev');
    const bytes = randomBytes(mib * 1024 * 1024);
    const artifact = await p.app.services.ota.repository.uploadArtifact('default', Readable.from([bytes]));
    const rel = await p.app.services.ota.repository.createRelease(
      'default',
      { type: 'user', id: 'bench' },
      {
        name: 'big',
        version: '1.0.0',
        kind: 'firmware',
        artifact: artifact.sha256,
        hardware: ['x'],
        allowDowngrade: false,
        notes: '',
      },
    );
    const url = new URL(`/ota/default/targets/big/${rel.sha256}.1.0.0`, p.url);
    const agent = new Agent({ key: dev.key, cert: dev.chain, ca: p.ca, keepAlive: true, maxSockets: 8 });
    const get = (range?: string) =>
      new Promise<number>((resolve, reject) => {
        const req = request(url, { agent, headers: range ? { range } : {} }, (res) => {
          let n = 0;
          res.on('data', (c: Buffer) => (n += c.length));
          res.on('end', () => resolve(n));
          res.on('error', reject);
        });
        req.on('error', reject);
        req.end();
      });
    await get(); // warm up (handshake, page cache)
    const rounds = 4;
    let t0 = performance.now();
    let total = 0;
    for (let i = 0; i < rounds; i++) total += await get();
    const seqMs = performance.now() - t0;
    await Promise.all(Array.from({ length: 4 }, () => get())); // four warm connections
    t0 = performance.now();
    const par = await Promise.all(Array.from({ length: 4 }, () => get()));
    const parMs = performance.now() - t0;
    t0 = performance.now();
    const half = await get(`bytes=${bytes.length / 2}-`);
    const rangeMs = performance.now() - t0;
    agent.destroy();
    return {
      artifactMiB: mib,
      sequentialMiBps: round(total / 1048576 / (seqMs / 1000), 1),
      parallel4MiBps: round(par.reduce((a, b) => a + b, 0) / 1048576 / (parMs / 1000), 1),
      resumedHalfMiBps: round(half / 1048576 / (rangeMs / 1000), 1),
    };
  } finally {
    await p.close();
  }
}

const suite: Suite = {
  name: 'ota',
  description:
    'OTA: campaign assignments/s with 100k targeted devices (eligibility + waves + insert), scheduler notifications/s, reports/s, artifact download MiB/s over mutual TLS',
  order: 95,
  async run(ctx) {
    const sched = await scheduler(ctx, ctx.quick ? 10_000 : 100_000);
    const dl = await download(ctx, ctx.quick ? 16 : 64);
    return { scheduler: sched, download: dl };
  },
};

export default suite;
