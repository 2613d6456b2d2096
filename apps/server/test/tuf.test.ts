// The TUF repository end to end: offline root and targets keys (signed through the API as the CLI does),
// online snapshot/timestamp, the device-facing repository over mutual TLS, and the device agent
// (tuf-js) installing a release.
import 'reflect-metadata';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { request } from 'node:https';
import { OtaAgent } from '@bulwark/device';
import { tempDir } from '../../../test/support/db.ts';
import {
  enrollDevice,
  startPlatform,
  type DeviceCredentials,
  type Platform,
} from '../../../test/support/platform.ts';
import {
  fakeInstaller,
  initRepository,
  offlineKey,
  pending,
  recordingMessaging,
  signPending,
  uploadArtifact,
  type OfflineKey,
} from './support/ota-harness.ts';

const TENANT = 'default';

export function deviceGet(
  p: Platform,
  creds: DeviceCredentials | undefined,
  path: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: Buffer; headers: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = request(
      new URL(path, p.url),
      {
        ca: p.ca,
        ...(creds ? { key: creds.key, cert: creds.chain } : {}),
        headers,
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks), headers: res.headers }),
        );
      },
    );
    req.on('error', reject);
    req.end();
  });
}

describe('TUF repository with offline root and targets keys', () => {
  let p: Platform;
  let dev: DeviceCredentials;
  const keys = { root: offlineKey(), targets: offlineKey() };
  const fw1 = randomBytes(200_000);
  let releaseId: string;
  before(async () => {
    p = await startPlatform();
    dev = await enrollDevice(p, 'tuf-dev-1');
  });
  after(async () => {
    await p.close();
  });

  test('an uninitialized repository has no metadata; the root is drafted from offline public keys', async () => {
    const status = await p.api<{ initialized: boolean; signing: string; onlineKeys: object }>(
      'GET',
      '/api/v1/ota/repository',
    );
    assert.equal(status.status, 200);
    assert.equal(status.body.initialized, false);
    assert.equal(status.body.signing, 'offline');
    assert.equal((await deviceGet(p, dev, `/ota/${TENANT}/metadata/timestamp.json`)).status, 404);
    await initRepository(p, keys);
    const after = await p.api<{ initialized: boolean; roles: Record<string, { version: number }> }>(
      'GET',
      '/api/v1/ota/repository',
    );
    assert.equal(after.body.initialized, true);
    assert.deepEqual(Object.fromEntries(Object.entries(after.body.roles).map(([k, v]) => [k, v.version])), {
      root: 1,
      targets: 1,
      snapshot: 1,
      timestamp: 1,
    });
    // The platform keeps only the public halves of the offline keys.
    const stored = await p.app.db.all<{ role: string; sealed_private: string | null }>(
      "SELECT role, sealed_private FROM ota_tuf_keys WHERE role IN ('root', 'targets')",
    );
    assert.equal(stored.length, 2);
    assert.ok(stored.every((k) => k.sealed_private === null));
  });

  test('a release waits for the offline targets signature; wrong keys and bad signatures are refused', async () => {
    const up = await uploadArtifact(p, fw1);
    assert.equal(up.status, 201);
    assert.equal(up.body.size, fw1.length);
    const r = await p.api<{ id: string; state: string; targetPath: string }>('POST', '/api/v1/releases', {
      name: 'sensor-fw',
      version: '1.1.0',
      artifact: up.body.sha256,
      hardware: ['sensor-v2', 'sensor-v3@b'],
      sbom: { bomFormat: 'CycloneDX', specVersion: '1.5', components: [] },
    });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    assert.equal(r.body.state, 'unsigned');
    assert.equal(r.body.targetPath, 'sensor-fw/1.1.0');
    releaseId = r.body.id;
    const draft = await pending(p, 'targets');
    assert.deepEqual(draft?.changes, { added: ['sensor-fw/1.1.0'], removed: [] });

    // Signed by the root key (not a targets key): refused.
    const wrongKey = await signPending(p, 'targets', [keys.root]);
    assert.equal(wrongKey.status, 400);
    assert.equal((wrongKey.body as unknown as { code: string }).code, 'ERR_RELEASE_SIGNATURE_INVALID');
    // A stranger's key: refused.
    assert.equal((await signPending(p, 'targets', [offlineKey()])).status, 400);
    // A valid key over other bytes: refused.
    const bad = await p.api<{ code: string }>('POST', '/api/v1/ota/repository/signatures', {
      role: 'targets',
      digest: draft?.digest,
      signatures: [{ keyid: keys.targets.keyId, sig: 'ab'.repeat(64) }],
    });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.code, 'ERR_RELEASE_SIGNATURE_INVALID');
    // A signature for a draft that has changed since: refused.
    const stale = await p.api<{ code: string }>('POST', '/api/v1/ota/repository/signatures', {
      role: 'targets',
      digest: '0'.repeat(64),
      signatures: [{ keyid: keys.targets.keyId, sig: 'ab'.repeat(64) }],
    });
    assert.equal(stale.status, 409);
    assert.equal(stale.body.code, 'ERR_RELEASE_DRAFT_STALE');
    // Not downloadable before it is signed.
    assert.equal(
      (await deviceGet(p, dev, `/ota/${TENANT}/targets/sensor-fw/${up.body.sha256}.1.1.0`)).status,
      404,
    );
    const ok = await signPending(p, 'targets', [keys.targets]);
    assert.equal(ok.status, 200);
    assert.equal(ok.body.published, true);
    assert.equal(ok.body.version, 2);
    const after = await p.api<{ state: string }>('GET', `/api/v1/releases/${releaseId}`);
    assert.equal(after.body.state, 'published');
    assert.equal((await p.api('GET', `/api/v1/releases/${releaseId}/sbom`)).status, 200);
  });

  test('the device repository needs a device certificate and serves ranges', async () => {
    assert.equal((await deviceGet(p, undefined, `/ota/${TENANT}/metadata/timestamp.json`)).status, 401);
    const ts = await deviceGet(p, dev, `/ota/${TENANT}/metadata/timestamp.json`);
    assert.equal(ts.status, 200);
    assert.equal(JSON.parse(ts.body.toString()).signed._type, 'timestamp');
    assert.equal((await deviceGet(p, dev, `/ota/other-tenant/metadata/timestamp.json`)).status, 403);
    assert.equal((await deviceGet(p, dev, `/ota/${TENANT}/metadata/9.root.json`)).status, 404);
    const r = await p.api<{ sha256: string }>('GET', `/api/v1/releases/${releaseId}`);
    const path = `/ota/${TENANT}/targets/sensor-fw/${r.body.sha256}.1.1.0`;
    const whole = await deviceGet(p, dev, path);
    assert.equal(whole.status, 200);
    assert.ok(whole.body.equals(fw1));
    const part = await deviceGet(p, dev, path, { range: 'bytes=1000-' });
    assert.equal(part.status, 206);
    assert.equal(part.headers['content-range'], `bytes 1000-${fw1.length - 1}/${fw1.length}`);
    assert.ok(part.body.equals(fw1.subarray(1000)));
    const suffix = await deviceGet(p, dev, path, { range: 'bytes=-10' });
    assert.ok(suffix.body.equals(fw1.subarray(fw1.length - 10)));
    for (const bad of [`bytes=${fw1.length}-`, 'bytes=5-2', 'bytes=0-1,4-5', 'items=0-1', 'bytes=-0']) {
      const res = await deviceGet(p, dev, path, { range: bad });
      assert.equal(res.status, 416, bad);
    }
    // A blob that is not a released target is not served even with the right hash.
    const other = await uploadArtifact(p, randomBytes(100));
    assert.equal(
      (await deviceGet(p, dev, `/ota/${TENANT}/targets/sensor-fw/${other.body.sha256}.1.1.0`)).status,
      404,
    );
  });

  test('the device agent verifies with tuf-js and installs the release', async () => {
    const dir = tempDir('bulwark-ota-agent-');
    const root = await p.app.services.ota.repository.metadataFile(TENANT, '1.root.json');
    const messaging = recordingMessaging();
    const installer = fakeInstaller('1.0.0');
    const agent = new OtaAgent({
      deviceId: dev.id,
      tenant: TENANT,
      url: p.url,
      tls: { key: dev.key, cert: dev.chain, ca: p.ca },
      stateDir: dir.path,
      trustedRoot: root,
      messaging,
      installer,
      hardware: { model: 'sensor-v2' },
    });
    try {
      await agent.start();
      messaging.deliver({ campaign: 'c1', action: 'install', target: 'sensor-fw/1.1.0', version: '1.1.0' });
      await agent.idle();
      assert.deepEqual(
        messaging.published.map((m) => (m.payload as { state: string }).state),
        ['downloading', 'downloading', 'installing', 'rebooting', 'succeeded'],
      );
      assert.ok(installer.installed?.equals(fw1));
      assert.equal(installer.current, '1.1.0');
    } finally {
      agent.close();
      dir.cleanup();
    }
  });

  test('a lab platform (online signing) publishes releases without offline keys', async () => {
    const lab = await startPlatform({ env: { BULWARK_OTA_SIGNING: 'online' } });
    try {
      const up = await uploadArtifact(lab, Buffer.from('lab firmware'));
      const r = await lab.api<{ state: string }>('POST', '/api/v1/releases', {
        name: 'lab-fw',
        version: '0.1.0',
        artifact: up.body.sha256,
        hardware: ['lab'],
      });
      assert.equal(r.status, 201);
      assert.equal(r.body.state, 'published');
      const audit = await lab.api<{ items: { action: string }[] }>(
        'GET',
        '/api/v1/audit?action=ota.targets.sign-online',
      );
      // The first (empty) targets when the repository was set up, then the release.
      assert.equal(audit.body.items.length, 2);
    } finally {
      await lab.close();
    }
  });
});

export type { OfflineKey };
