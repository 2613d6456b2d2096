// A campaign over a simulated fleet of real MQTT devices (MQTT.js over mutual TLS, certificates issued
// through the API): capability reports, exclusions, canary, approval, a failing wave that aborts the
// campaign and rolls the failed devices back, driven and watched through the bulwark CLI, every step
// audited. Some devices run the real OTA agent (tuf-js download over mTLS), the others simulate it.
import 'reflect-metadata';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { MqttClient } from 'mqtt';
import { mqttMessaging, OtaAgent } from '@bulwark/device';
import { tempDir } from '../../../test/support/db.ts';
import {
  connectDevice,
  makeCsr,
  startPlatform,
  waitFor,
  type DeviceCredentials,
  type Platform,
} from '../../../test/support/platform.ts';
import { fakeInstaller, initRepository, offlineKey, release } from './support/ota-harness.ts';

const BIN = fileURLToPath(new URL('../../../packages/cli/bin/bulwark.js', import.meta.url));
const MAIN = Number(process.env.BULWARK_TEST_CAMPAIGN_DEVICES ?? 200);
const AGENTS = 10; // of MAIN, running the real agent
const LEGACY = 20;
const FROZEN = 10;

interface Sim {
  id: string;
  creds: DeviceCredentials;
  client: MqttClient;
  notices: { action: string; campaign: string }[];
  agent?: OtaAgent;
}

function cli(
  p: Platform,
  work: string,
  ...args: string[]
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      cwd: work,
      env: {
        PATH: process.env.PATH,
        HOME: work,
        BULWARK_CONFIG_DIR: join(work, 'config'),
        BULWARK_URL: p.url,
        BULWARK_TOKEN: p.token,
        BULWARK_CA_FILE: p.app.paths.caFile,
      },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stdout, stderr });
    });
  });
}

async function inBatches<T, R>(
  items: readonly T[],
  n: number,
  fn: (t: T, i: number) => Promise<R>,
): Promise<R[]> {
  const out: R[] = [];
  for (let i = 0; i < items.length; i += n)
    out.push(...(await Promise.all(items.slice(i, i + n).map((t, j) => fn(t, i + j)))));
  return out;
}

const publish = (c: MqttClient, topic: string, body: unknown) =>
  c.publishAsync(topic, JSON.stringify(body), { qos: 1 });

describe('campaign over a simulated fleet', () => {
  let p: Platform;
  let work: { path: string; cleanup(): void };
  const sims = new Map<string, Sim>();
  const failing = new Set<string>();
  const keys = { root: offlineKey(), targets: offlineKey() };
  let releaseId: string;
  let root: string;

  /** A simulated device: reports its profile, follows notices, succeeds or fails as the test says. */
  const simulate = async (
    id: string,
    profile: object,
    opts: { agent?: boolean; connect?: boolean; batch?: string } = {},
  ) => {
    const creds = await enroll(id, opts.batch);
    const sim: Sim = { id, creds, client: undefined as unknown as MqttClient, notices: [] };
    sims.set(id, sim);
    if (opts.connect === false) return sim;
    await connect(sim, profile, opts.agent === true);
    return sim;
  };
  const connect = async (sim: Sim, profile: object, agent: boolean) => {
    const client = await connectDevice(p, sim.creds, {
      clientId: sim.id,
      clean: true,
      connectTimeout: 30_000,
    });
    sim.client = client;
    await publish(client, `devices/${sim.id}/capabilities`, profile);
    if (agent) {
      const dir = tempDir('bulwark-ota-fleet-');
      sim.agent = new OtaAgent({
        deviceId: sim.id,
        tenant: 'default',
        url: p.url,
        tls: { key: sim.creds.key, cert: sim.creds.chain, ca: p.ca },
        stateDir: dir.path,
        trustedRoot: root,
        messaging: mqttMessaging(client),
        installer: fakeInstaller('1.0.0'),
        hardware: { model: 'sensor-v2' },
      });
      client.on('message', (topic, payload) => {
        if (topic.endsWith('/ota/notify') && payload.length > 0)
          sim.notices.push(JSON.parse(payload.toString()));
      });
      await sim.agent.start();
      return;
    }
    client.on('message', (topic, payload) => {
      if (!topic.endsWith('/ota/notify') || payload.length === 0) return;
      const n = JSON.parse(payload.toString()) as { action: string; campaign: string; version?: string };
      sim.notices.push(n);
      const status = `devices/${sim.id}/ota/status`;
      void (async () => {
        if (n.action === 'rollback') {
          await publish(client, status, { campaign: n.campaign, state: 'rolled-back', version: '1.0.0' });
          return;
        }
        if (n.action !== 'install') return;
        await publish(client, status, { campaign: n.campaign, state: 'downloading', progress: 0 });
        await publish(client, status, { campaign: n.campaign, state: 'installing' });
        if (failing.has(sim.id)) {
          await publish(client, status, {
            campaign: n.campaign,
            state: 'failed',
            reason: 'flash write error',
          });
          return;
        }
        await publish(client, status, { campaign: n.campaign, state: 'rebooting' });
        await publish(client, status, {
          campaign: n.campaign,
          state: 'succeeded',
          version: n.version,
          health: 'ok',
        });
      })().catch(() => {});
    });
    await client.subscribeAsync(`devices/${sim.id}/ota/notify`, { qos: 1 });
  };

  /** Registers a device (with attributes) and has its CSR signed, as `bulwark device create` does. */
  const enroll = async (id: string, batch: string | undefined): Promise<DeviceCredentials> => {
    const created = await p.api('POST', '/api/v1/devices', {
      id,
      ...(batch ? { attributes: { batch } } : {}),
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const { keyPem, csrPem } = await makeCsr(id);
    const issued = await p.api<{ certificate: string; chain: string; ca: string; serial: string }>(
      'POST',
      `/api/v1/devices/${id}/certificates`,
      { csr: csrPem },
    );
    assert.equal(issued.status, 201, JSON.stringify(issued.body));
    return { id, key: keyPem, ...issued.body, cert: issued.body.certificate };
  };

  before(async () => {
    p = await startPlatform();
    work = tempDir('bulwark-campaign-cli-');
    await initRepository(p, keys);
    releaseId = await release(
      p,
      { name: 'sensor-fw', version: '1.1.0', hardware: ['sensor-v2'], bytes: randomBytes(32 * 1024) },
      keys.targets,
    );
    root = await p.app.services.ota.repository.metadataFile('default', '1.root.json');
    const current = {
      hardware: { model: 'sensor-v2', revision: 'a' },
      firmware: { version: '1.0.0' },
      updateMethod: 'ab-partition',
    };
    const ids = Array.from({ length: MAIN }, (_, i) => `sim-${String(i).padStart(4, '0')}`);
    const legacy = Array.from({ length: LEGACY }, (_, i) => `legacy-${i}`);
    const frozen = Array.from({ length: FROZEN }, (_, i) => `frozen-${i}`);
    // Many at once: the API answers concurrent requests in one group commit.
    await inBatches(ids, 25, (id, i) => simulate(id, current, { agent: i < AGENTS, batch: 'main' }));
    await inBatches(legacy, 25, (id) =>
      simulate(id, { ...current, hardware: { model: 'legacy-v1' } }, { batch: 'main' }),
    );
    await inBatches(frozen, 25, (id) =>
      simulate(id, { ...current, updateMethod: 'none' }, { batch: 'main' }),
    );
  });
  after(async () => {
    for (const s of sims.values()) {
      s.agent?.close();
      s.client?.end(true);
    }
    await p.close();
    work.cleanup();
  });

  test('the attributes were set (targeting by query)', async () => {
    const d = await p.api<{ attributes: Record<string, string> }>('GET', '/api/v1/devices/sim-0000');
    assert.equal(d.body.attributes.batch, 'main', JSON.stringify(d.body));
  });

  test('canary, approval, then a failing wave aborts the campaign and failed devices roll back', async () => {
    const dry = await cli(
      p,
      work.path,
      'campaign',
      'create',
      '--name',
      'fw 1.1.0',
      '--release',
      releaseId,
      '--query',
      'attr.batch = main',
      '--dry-run',
      '--json',
    );
    assert.equal(dry.code, 0, dry.stderr);
    const preview = JSON.parse(dry.stdout) as { campaign: null; eligible: number; excludedCount: number };
    assert.equal(preview.campaign, null);
    assert.equal(preview.eligible, MAIN);
    assert.equal(preview.excludedCount, LEGACY + FROZEN);

    const created = await cli(
      p,
      work.path,
      'campaign',
      'create',
      '--name',
      'fw 1.1.0',
      '--release',
      releaseId,
      '--query',
      'attr.batch = main',
      '--waves',
      '10,50%,100%',
      '--threshold',
      '10',
      '--approval',
      '--max-concurrent',
      '50',
      '--rate',
      '100000',
      '--json',
    );
    assert.equal(created.code, 0, created.stderr);
    const r = JSON.parse(created.stdout) as {
      campaign: { id: string; waveSizes: number[] };
      excluded: { deviceId: string; reason: string }[];
    };
    const id = r.campaign.id;
    assert.deepEqual(r.campaign.waveSizes, [10, MAIN / 2 - 10, MAIN / 2]);
    const reasons = new Map(r.excluded.map((x) => [x.deviceId, x.reason]));
    assert.equal(reasons.get('legacy-0'), 'incompatible hardware legacy-v1');
    assert.equal(reasons.get('frozen-0'), 'not updatable (update method none)');

    const until = async (state: string) => {
      try {
        await waitFor(
          async () =>
            (await p.app.services.ota.campaigns.get('default', id)).state === state ? true : undefined,
          30_000,
        );
      } catch (err) {
        const c = await p.app.services.ota.campaigns.get('default', id);
        const stuck = await p.app.services.ota.campaigns.devices('default', id, {
          limit: 5,
          state: 'downloading',
        });
        throw new Error(
          `campaign is ${c.state} (${c.stateReason}), wave ${c.wave}: ${JSON.stringify(c.devices)} ${JSON.stringify(stuck.items)}`,
          { cause: err },
        );
      }
    };
    const show = async () => {
      const res = await cli(p, work.path, 'campaign', 'show', id, '--json');
      assert.equal(res.code, 0, res.stderr);
      return JSON.parse(res.stdout) as {
        state: string;
        wave: number;
        stateReason: string | null;
        devices: Record<string, number>;
      };
    };
    // The canary (10 devices) succeeds; wave 2 waits for approval.
    await until('awaiting-approval');
    const canary = await show();
    assert.equal(canary.devices.succeeded, 10);
    assert.equal(canary.wave, 1);

    // From now on a third of the simulated devices fail on purpose.
    let k = 0;
    for (const s of sims.values())
      if (s.id.startsWith('sim-') && !s.agent && k++ % 3 === 0) failing.add(s.id);
    const approved = await cli(p, work.path, 'campaign', 'approve', id);
    assert.equal(approved.code, 0, approved.stderr);
    assert.match(approved.stdout, /state\s+running/);

    await until('aborted');
    const aborted = await show();
    assert.match(aborted.stateReason ?? '', /^wave 2: \d+ of 90 devices failed \(threshold 10%\)$/);
    // Failed devices are told to roll back and report it.
    await waitFor(async () => {
      const c = await p.app.services.ota.campaigns.get('default', id);
      return (c.devices['rolled-back'] ?? 0) > 0 && (c.devices.failed ?? 0) === 0 ? c : undefined;
    }, 30_000);
    const final = await show();
    const rolledBack = final.devices['rolled-back'] ?? 0;
    assert.ok(rolledBack >= 10, JSON.stringify(final.devices));
    assert.ok((final.devices.cancelled ?? 0) >= MAIN / 2, JSON.stringify(final.devices)); // the third wave
    assert.equal(final.devices.excluded, LEGACY + FROZEN);

    // Nobody in the third wave, and no excluded device, was ever notified.
    const third = await p.api<{ items: { deviceId: string; state: string }[] }>(
      'GET',
      `/api/v1/campaigns/${id}/devices?wave=2&limit=1000`,
    );
    assert.equal(third.body.items.length, MAIN / 2);
    for (const a of third.body.items) assert.deepEqual(sims.get(a.deviceId)?.notices ?? [], [], a.deviceId);
    for (const s of sims.values()) if (!s.id.startsWith('sim-')) assert.deepEqual(s.notices, [], s.id);
    const devices = JSON.parse(
      (await cli(p, work.path, 'campaign', 'show', id, '--devices', '--state', 'rolled-back', '--json'))
        .stdout,
    ) as {
      devices: { reason: string }[];
    };
    assert.equal(devices.devices.length, rolledBack);
    assert.ok(devices.devices.every((d) => d.reason === 'flash write error'));

    // Every step is in the audit log.
    const audit = await p.api<{ items: { action: string; target?: { id: string } }[] }>(
      'GET',
      '/api/v1/audit?limit=1000',
    );
    const actions = new Set(
      audit.body.items
        .filter((e) => e.target?.id === id || e.action === 'campaign.device.failed')
        .map((e) => e.action),
    );
    for (const a of [
      'campaign.create',
      'campaign.wave.start',
      'campaign.wave.complete',
      'campaign.wave.await-approval',
      'campaign.approve',
      'campaign.abort',
      'campaign.device.failed',
    ])
      assert.ok(actions.has(a), `${a} not audited: ${[...actions].join(', ')}`);
  });

  test('agents notified in the canary installed the release through tuf-js', async () => {
    const agents = [...sims.values()].filter((s) => s.agent && s.notices.some((n) => n.action === 'install'));
    const c = (await p.app.services.ota.campaigns.list('default')).items[0];
    assert.ok(c);
    for (const s of agents) {
      const page = await p.app.services.ota.campaigns.devices('default', c.id, { limit: 1000 });
      const a = page.items.find((x) => x.deviceId === s.id);
      assert.ok(a);
      if (a.state === 'cancelled') continue; // stopped by the abort before it finished
      assert.equal(a.state, 'succeeded', `${s.id}: ${a.reason}`);
      assert.equal(a.version, '1.1.0');
    }
  });
});
