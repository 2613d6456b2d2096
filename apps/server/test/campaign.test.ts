// Campaign rules on a real platform with a fake clock: refusals (unsigned release, downgrade), rate
// limit, maintenance windows, device timeouts, pause/resume/cancel by hand, the retained notice an
// offline device gets when it connects, refused status reports, and the timestamp refresher.
import 'reflect-metadata';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { fixedClock } from '../src/kernel/index.ts';
import {
  connectDevice,
  enrollDevice,
  startPlatform,
  waitFor,
  type Platform,
} from '../../../test/support/platform.ts';
import { initRepository, offlineKey, release, uploadArtifact } from './support/ota-harness.ts';

const T = 'default';
const profile = (version: string, extra: object = {}) =>
  JSON.stringify({
    hardware: { model: 'hw' },
    firmware: { version },
    updateMethod: 'ab-partition',
    ...extra,
  });

describe('campaign rules (fake clock)', () => {
  // Noon UTC yesterday: in the past, so certificates issued on this clock are valid for real TLS too.
  const today = new Date();
  const noon = Date.UTC(today.getUTCFullYear(), today.getUTCMonth(), today.getUTCDate() - 1, 12);
  const clock = fixedClock(noon);
  let p: Platform;
  const keys = { root: offlineKey(), targets: offlineKey() };
  let rel: string;
  const campaigns = () => p.app.services.ota.campaigns;
  const report = (device: string, body: object) =>
    campaigns().report(T, device, Buffer.from(JSON.stringify(body)));
  const create = (body: object) =>
    p.api<{ code?: string; campaign: { id: string } }>('POST', '/api/v1/campaigns', body);

  before(async () => {
    p = await startPlatform({ clock });
    await initRepository(p, keys);
    rel = await release(
      p,
      { name: 'fw', version: '2.0.0', hardware: ['hw'], bytes: randomBytes(100) },
      keys.targets,
    );
    for (let i = 0; i < 12; i++) {
      await p.api('POST', '/api/v1/devices', { id: `d${i}` });
      await p.app.db.run(
        'INSERT INTO device_capabilities (tenant_id, device_id, version, data, digest, reported_at) VALUES (?, ?, 1, ?, ?, ?)',
        [T, `d${i}`, profile(i === 11 ? '3.0.0' : '1.0.0'), `h${i}`, clock.now()],
      );
    }
  });
  after(async () => p.close());

  test('an unsigned release and a downgrade are refused', async () => {
    const up = await uploadArtifact(p, randomBytes(10));
    const unsigned = await p.api<{ id: string }>('POST', '/api/v1/releases', {
      name: 'fw',
      version: '2.1.0',
      artifact: up.body.sha256,
      hardware: ['hw'],
    });
    const r1 = await create({ name: 'x', release: unsigned.body.id, target: { devices: ['d0'] } });
    assert.equal(r1.status, 409);
    assert.equal(r1.body.code, 'ERR_CAMPAIGN_RELEASE_UNSIGNED');
    const r2 = await create({ name: 'x', release: rel, target: { devices: ['d0', 'd11'] } });
    assert.equal(r2.status, 409);
    assert.equal(r2.body.code, 'ERR_CAMPAIGN_DOWNGRADE');
    // Explicitly allowed, but the release was not signed with downgrade authorisation: devices would refuse.
    const r3 = await create({
      name: 'x',
      release: rel,
      target: { devices: ['d11'] },
      plan: { allowDowngrade: true },
    });
    assert.equal(r3.status, 409);
    assert.match(JSON.stringify(r3.body), /not signed with downgrade authorisation/);
    const r4 = await create({ name: 'x', release: rel, target: { devices: ['nope'] } });
    assert.equal(r4.status, 400);
  });

  test('rate limit, maintenance window and device timeout, with the fake clock', async () => {
    const r = await create({
      name: 'slow',
      release: rel,
      target: { devices: ['d0', 'd1', 'd2', 'd3', 'd4'] },
      plan: {
        waves: [{ percent: 100 }],
        ratePerMinute: 2,
        windows: [{ from: '13:00', to: '14:00' }],
        deviceTimeoutSeconds: 600,
        failureThresholdPercent: 100,
      },
    });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    const id = r.body.campaign.id;
    const notified = async () => (await campaigns().get(T, id)).devices.notified ?? 0;
    assert.equal(await notified(), 0); // noon: outside the window
    clock.set(noon + 3600_000);
    await campaigns().evaluate(T, id);
    assert.equal(await notified(), 2); // two per minute
    clock.advance(30_000);
    await campaigns().evaluate(T, id);
    assert.equal(await notified(), 2);
    clock.advance(31_000);
    await campaigns().evaluate(T, id);
    assert.equal(await notified(), 4);
    // The first two never answer: failed after the timeout, reason recorded.
    clock.advance(600_000 - 61_000 + 1000);
    await campaigns().evaluate(T, id);
    const failed = await campaigns().devices(T, id, { state: 'failed' });
    assert.equal(failed.items.length, 2);
    assert.match(failed.items[0]?.reason ?? '', /^no result within 600 s \(last state notified\)$/);
  });

  test('pause, resume, cancel by hand; reports for the wrong campaign are refused', async () => {
    const r = await create({
      name: 'manual',
      release: rel,
      target: { devices: ['d5', 'd6', 'd7'] },
      plan: { waves: [{ count: 1 }, { percent: 100 }], failureThresholdPercent: 0, onFailure: 'pause' },
    });
    const id = r.body.campaign.id;
    const state = async () => (await campaigns().get(T, id)).state;
    const first = (await campaigns().devices(T, id, { state: 'notified' })).items[0];
    assert.ok(first);
    await assert.rejects(report(first.deviceId, { campaign: 'other', state: 'downloading' }), {
      code: 'ERR_OTA_STATUS_INVALID',
    });
    await assert.rejects(report(first.deviceId, { campaign: id, state: 'exploded' }), {
      code: 'ERR_OTA_STATUS_INVALID',
    });
    await assert.rejects(report('d0', { campaign: id, state: 'failed' }), { code: 'ERR_OTA_STATUS_INVALID' });
    // The canary fails: the campaign pauses itself (threshold 0%).
    await report(first.deviceId, { campaign: id, state: 'failed', reason: 'bricked' });
    await campaigns().idle();
    assert.equal(await state(), 'paused');
    assert.match((await campaigns().get(T, id)).stateReason ?? '', /1 of 1 devices failed/);
    // Resuming acknowledges the failure seen: the next wave starts.
    const resumed = await p.api<{ state: string; wave: number }>('POST', `/api/v1/campaigns/${id}/resume`);
    assert.equal(resumed.body.state, 'running');
    assert.equal(resumed.body.wave, 1);
    const paused = await p.api<{ state: string }>('POST', `/api/v1/campaigns/${id}/pause`, {
      reason: 'night shift',
    });
    assert.equal(paused.body.state, 'paused');
    assert.equal(
      (await p.api<{ code: string }>('POST', `/api/v1/campaigns/${id}/approve`)).body.code,
      'ERR_CAMPAIGN_STATE',
    );
    const cancelled = await p.api<{ state: string; devices: Record<string, number> }>(
      'POST',
      `/api/v1/campaigns/${id}/cancel`,
      {},
    );
    assert.equal(cancelled.body.state, 'cancelled');
    assert.equal(cancelled.body.devices.cancelled, 2);
    assert.equal(
      (await p.api<{ code: string }>('POST', `/api/v1/campaigns/${id}/resume`)).body.code,
      'ERR_CAMPAIGN_STATE',
    );
    const audit = await p.api<{ items: { action: string; reason?: string }[] }>(
      'GET',
      '/api/v1/audit?limit=200',
    );
    const actions = audit.body.items.map((e) => e.action);
    for (const a of ['campaign.pause', 'campaign.resume', 'campaign.cancel', 'campaign.device.failed'])
      assert.ok(actions.includes(a), a);
  });

  test('an offline device gets its notice when it connects; bad reports get a PUBACK error', async () => {
    const creds = await enrollDevice(p, 'late-1');
    await p.app.db.run(
      'INSERT INTO device_capabilities (tenant_id, device_id, version, data, digest, reported_at) VALUES (?, ?, 1, ?, ?, ?)',
      [T, 'late-1', profile('1.0.0'), 'hl', clock.now()],
    );
    const r = await create({ name: 'late', release: rel, target: { devices: ['late-1'] } });
    const id = r.body.campaign.id;
    assert.equal((await campaigns().get(T, id)).devices.notified, 1);
    const client = await connectDevice(p, creds, { clientId: 'late-1' });
    try {
      const notices: string[] = [];
      client.on('message', (topic, payload) => notices.push(`${topic} ${payload.toString()}`));
      await client.subscribeAsync('devices/late-1/ota/notify', { qos: 1 });
      await waitFor(() => (notices.length > 0 ? true : undefined));
      assert.match(notices[0] ?? '', /"action":"install","target":"fw\/2.0.0","version":"2.0.0"/);
      const bad = await client
        .publishAsync('devices/late-1/ota/status', '{"campaign":"x","state":"succeeded"}', { qos: 1 })
        .then((pk) => (pk as { reasonCode?: number } | undefined)?.reasonCode ?? 0)
        .catch((err: { code?: number }) => err.code ?? -1);
      assert.equal(bad, 0x99);
      const forged = await client
        .publishAsync('devices/late-1/ota/notify', '{"campaign":"x","action":"install"}', { qos: 1 })
        .then((pk) => (pk as { reasonCode?: number } | undefined)?.reasonCode ?? 0)
        .catch((err: { code?: number }) => err.code ?? -1);
      assert.equal(forged, 0x87);
      await client.publishAsync(
        'devices/late-1/ota/status',
        JSON.stringify({ campaign: id, state: 'succeeded', version: '2.0.0' }),
        { qos: 1 },
      );
      await waitFor(async () => ((await campaigns().get(T, id)).state === 'completed' ? true : undefined));
    } finally {
      client.end(true);
    }
  });

  test('a success that reports another version counts as a failure', async () => {
    await p.api('POST', '/api/v1/devices', { id: 'liar' });
    await p.app.db.run(
      'INSERT INTO device_capabilities (tenant_id, device_id, version, data, digest, reported_at) VALUES (?, ?, 1, ?, ?, ?)',
      [T, 'liar', profile('1.0.0'), 'hx', clock.now()],
    );
    const id = (await create({ name: 'liar', release: rel, target: { devices: ['liar'] } })).body.campaign.id;
    await report('liar', { campaign: id, state: 'succeeded', version: '1.0.0' });
    const a = (await campaigns().devices(T, id)).items[0];
    assert.equal(a?.state, 'failed');
    assert.equal(a?.reason, 'reported version 1.0.0 after the update, expected 2.0.0');
  });

  test('the timestamp is re-signed at half its lifetime by the refresher', async () => {
    const repo = p.app.services.ota.repository;
    const before = JSON.parse(await repo.metadataFile(T, 'timestamp.json')) as {
      signed: { version: number };
    };
    assert.equal(await repo.refresh(), 0);
    clock.advance(13 * 3600_000);
    assert.equal(await repo.refresh(), 1);
    const now = JSON.parse(await repo.metadataFile(T, 'timestamp.json')) as {
      signed: { version: number; expires: string };
    };
    assert.equal(now.signed.version, before.signed.version + 1);
    assert.equal(Date.parse(now.signed.expires), clock.now() + 86_400_000 - (clock.now() % 1000));
  });
});
