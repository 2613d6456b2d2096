// The classic update attacks (TUF spec "Goals to protect against specific attacks"), each played by a
// malicious mirror between the device and the platform, or by the platform itself when compromised
// (it holds the online snapshot and timestamp keys). The device agent (tuf-js) must refuse every one,
// and nothing reaches the installer.
import 'reflect-metadata';
import { after, before, beforeEach, describe, mock, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, request, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { randomBytes, sign, createPrivateKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { OtaAgent } from '@bulwark/device';
import { createKeyProtector } from '../src/infra/keys/index.ts';
import { canonical, sha256Hex } from '../src/modules/ota/index.ts';
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
  recordingMessaging,
  release,
} from './support/ota-harness.ts';

const TENANT = 'default';

type Responder = (
  path: string,
  upstream: () => Promise<Buffer>,
) => Promise<Buffer | AsyncIterable<Buffer> | number>;

/** An HTTPS mirror with the platform's own server certificate (a network attacker that got one). */
async function startMirror(p: Platform, dev: DeviceCredentials) {
  const tls = { key: readFileSync(p.app.paths.serverKey), cert: readFileSync(p.app.paths.serverCert) };
  const upstream = (path: string) =>
    new Promise<Buffer>((resolve, reject) => {
      const req = request(
        new URL(path, p.url),
        { ca: p.ca, key: dev.key, cert: dev.chain, agent: false },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () =>
            res.statusCode === 200
              ? resolve(Buffer.concat(chunks))
              : reject(new Error(String(res.statusCode))),
          );
        },
      );
      req.on('error', reject);
      req.end();
    });
  const state: { respond: Responder; requests: string[]; ranges: string[] } = {
    respond: (_path, up) => up(),
    requests: [],
    ranges: [],
  };
  const server: Server = createServer(tls, (req, res) => {
    const path = req.url ?? '/';
    state.requests.push(path);
    if (req.headers.range) {
      // Range requests go to the platform as they are (the resumed part of a download).
      state.ranges.push(req.headers.range);
      const up = request(
        new URL(path, p.url),
        { ca: p.ca, key: dev.key, cert: dev.chain, agent: false, headers: { range: req.headers.range } },
        (r) => {
          res.writeHead(r.statusCode ?? 502, r.headers);
          r.pipe(res);
        },
      );
      up.on('error', () => res.destroy());
      up.end();
      return;
    }
    state
      .respond(path, () => upstream(path))
      .then(async (body) => {
        if (typeof body === 'number') {
          res.writeHead(body).end();
          return;
        }
        res.writeHead(200, { 'content-type': 'application/octet-stream' });
        if (Buffer.isBuffer(body)) {
          res.end(body);
          return;
        }
        for await (const chunk of body) {
          if (res.destroyed) return;
          if (!res.write(chunk)) await new Promise<void>((r) => res.once('drain', () => r()));
        }
        res.end();
      })
      // A failure mid-body drops the connection after flushing what was sent (a truncated transfer).
      .catch(() => (res.headersSent ? res.socket?.destroySoon() : res.writeHead(404).end()));
  });
  server.on('connection', (s) => s.on('error', () => {}));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `https://127.0.0.1:${(server.address() as AddressInfo).port}`,
    state,
    upstream,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

async function* endless(prefix: Buffer): AsyncIterable<Buffer> {
  yield prefix;
  for (let i = 0; i < 100_000; i++) yield randomBytes(16_384);
}

describe('TUF attacks against the device agent', () => {
  let p: Platform;
  let dev: DeviceCredentials;
  let mirror: Awaited<ReturnType<typeof startMirror>>;
  let root: string;
  const keys = { root: offlineKey(), targets: offlineKey() };
  const fw = randomBytes(64 * 1024);
  let oldTimestamp: Buffer;
  let oldTargets: { version: number; body: Buffer };

  const agent = (
    installed: string | undefined,
    opts: { model?: string; dir?: string; url?: string } = {},
  ) => {
    const dir = opts.dir ? { path: opts.dir, cleanup() {} } : tempDir('bulwark-ota-attack-');
    const installer = fakeInstaller(installed);
    const a = new OtaAgent({
      deviceId: dev.id,
      tenant: TENANT,
      url: opts.url ?? mirror.url,
      tls: { key: dev.key, cert: dev.chain, ca: p.ca },
      stateDir: dir.path,
      trustedRoot: root,
      messaging: recordingMessaging(),
      installer,
      hardware: { model: opts.model ?? 'sensor-v2' },
      attempts: 2,
    });
    return { a, installer, dir, done: () => (a.close(), dir.cleanup()) };
  };

  before(async () => {
    p = await startPlatform();
    dev = await enrollDevice(p, 'victim-1');
    mirror = await startMirror(p, dev);
    await initRepository(p, keys);
    root = await p.app.services.ota.repository.metadataFile(TENANT, '1.root.json');
    oldTimestamp = await mirror.upstream(`/ota/${TENANT}/metadata/timestamp.json`);
    oldTargets = { version: 1, body: await mirror.upstream(`/ota/${TENANT}/metadata/1.targets.json`) };
    await release(
      p,
      { name: 'sensor-fw', version: '1.1.0', hardware: ['sensor-v2'], bytes: fw },
      keys.targets,
    );
    await release(
      p,
      { name: 'sensor-fw', version: '1.0.5', hardware: ['sensor-v2'], bytes: randomBytes(1000) },
      keys.targets,
    );
    await release(
      p,
      {
        name: 'sensor-fw',
        version: '1.0.1',
        hardware: ['sensor-v2'],
        bytes: randomBytes(1000),
        allowDowngrade: true,
      },
      keys.targets,
    );
    await release(
      p,
      { name: 'other-fw', version: '2.0.0', hardware: ['sensor-v9'], bytes: randomBytes(1000) },
      keys.targets,
    );
  });
  after(async () => {
    await mirror.close();
    await p.close();
  });
  beforeEach(() => {
    mirror.state.respond = (_path, up) => up();
    mirror.state.requests.length = 0;
    mirror.state.ranges.length = 0;
  });

  test('control: through an honest mirror the update installs', async () => {
    const { a, installer, done } = agent('1.0.0');
    try {
      const r = await a.update('sensor-fw/1.1.0');
      assert.equal(r.state, 'succeeded', r.reason);
      assert.ok(installer.installed?.equals(fw));
    } finally {
      done();
    }
  });

  test('tampered artifact (same length, other bytes): hash mismatch, nothing installed', async () => {
    mirror.state.respond = async (path, up) => {
      const body = await up();
      if (path.includes('/targets/')) body[100] = (body[100] ?? 0) ^ 0xff;
      return body;
    };
    const { a, installer, done } = agent('1.0.0');
    try {
      const r = await a.update('sensor-fw/1.1.0');
      assert.equal(r.state, 'failed');
      assert.match(r.reason ?? '', /^LengthOrHashMismatchError/);
      assert.deepEqual(installer.log, []);
    } finally {
      done();
    }
  });

  test('endless data: an artifact longer than signed, and an endless timestamp, are cut off', async () => {
    mirror.state.respond = async (path, up) => (path.includes('/targets/') ? endless(await up()) : up());
    let t = agent('1.0.0');
    try {
      const r = await t.a.update('sensor-fw/1.1.0');
      assert.equal(r.state, 'failed');
      assert.match(r.reason ?? '', /^DownloadLengthMismatchError/);
      assert.deepEqual(t.installer.log, []);
    } finally {
      t.done();
    }
    mirror.state.respond = async (path, up) =>
      path.endsWith('timestamp.json') ? endless(Buffer.from('{')) : up();
    t = agent('1.0.0');
    try {
      const r = await t.a.update('sensor-fw/1.1.0');
      assert.equal(r.state, 'failed');
      assert.match(r.reason ?? '', /^DownloadLengthMismatchError: Max length reached/);
    } finally {
      t.done();
    }
  });

  test('arbitrary target: a path the targets metadata does not list is refused', async () => {
    const { a, installer, done } = agent('1.0.0');
    try {
      const r = await a.update('sensor-fw/6.6.6');
      assert.equal(r.state, 'failed');
      assert.equal(r.reason, 'sensor-fw/6.6.6 is not in the signed targets metadata');
      assert.deepEqual(installer.log, []);
      assert.ok(!mirror.state.requests.some((u) => u.includes('/targets/')));
    } finally {
      done();
    }
  });

  test('a compromised platform (online keys) cannot add a target: targets need the offline key', async () => {
    // The attacker holds the platform: master key, database, the sealed snapshot and timestamp keys.
    const protector = await createKeyProtector({ file: join(p.dataDir, 'secrets', 'master.key') });
    const online = async (role: string) => {
      const row = await p.app.db.get<{ key_id: string; sealed_private: string }>(
        'SELECT key_id, sealed_private FROM ota_tuf_keys WHERE role = ? AND sealed_private IS NOT NULL',
        [role],
      );
      assert.ok(row);
      const key = createPrivateKey({
        key: Buffer.from(await protector.open(row.sealed_private)),
        format: 'der',
        type: 'pkcs8',
      });
      return (signed: Record<string, unknown>) =>
        JSON.stringify({
          signed,
          signatures: [
            { keyid: row.key_id, sig: sign(null, Buffer.from(canonical(signed)), key).toString('hex') },
          ],
        });
    };
    const get = async (path: string) =>
      JSON.parse((await mirror.upstream(`/ota/${TENANT}/metadata/${path}`)).toString()) as {
        signed: Record<string, unknown> & { version: number; meta: Record<string, { version: number }> };
      };
    const evil = randomBytes(2048);
    const ts = await get('timestamp.json');
    const snapV = ts.signed.meta['snapshot.json']?.version ?? 0;
    const snap = await get(`${snapV}.snapshot.json`);
    const tV = snap.signed.meta['targets.json']?.version ?? 0;
    const targets = await get(`${tV}.targets.json`);
    const forgedTargets = (await online('snapshot'))({
      ...targets.signed,
      version: tV + 1,
      targets: {
        ...(targets.signed.targets as object),
        'sensor-fw/6.6.6': {
          length: evil.length,
          hashes: { sha256: sha256Hex(evil) },
          custom: { name: 'sensor-fw', version: '6.6.6', kind: 'firmware', hardware: ['sensor-v2'] },
        },
      },
    });
    const forgedSnapshot = (await online('snapshot'))({
      ...snap.signed,
      version: snapV + 1,
      meta: {
        'targets.json': {
          version: tV + 1,
          length: Buffer.byteLength(forgedTargets),
          hashes: { sha256: sha256Hex(forgedTargets) },
        },
      },
    });
    const forgedTimestamp = (await online('timestamp'))({
      ...ts.signed,
      version: ts.signed.version + 1,
      meta: {
        'snapshot.json': {
          version: snapV + 1,
          length: Buffer.byteLength(forgedSnapshot),
          hashes: { sha256: sha256Hex(forgedSnapshot) },
        },
      },
    });
    mirror.state.respond = async (path, up) => {
      if (path.endsWith('/timestamp.json')) return Buffer.from(forgedTimestamp);
      if (path.endsWith(`/${snapV + 1}.snapshot.json`)) return Buffer.from(forgedSnapshot);
      if (path.endsWith(`/${tV + 1}.targets.json`)) return Buffer.from(forgedTargets);
      if (path.includes('/targets/sensor-fw/')) return evil;
      return up();
    };
    const { a, installer, done } = agent('1.0.0');
    try {
      const r = await a.update('sensor-fw/6.6.6');
      assert.equal(r.state, 'failed');
      // tuf-js: the targets role's threshold (the offline key) is not met.
      assert.match(
        r.reason ?? '',
        /^RuntimeError: Unable to load targets error Error: targets was signed by 0\/1 keys$/,
      );
      assert.deepEqual(installer.log, []);
    } finally {
      done();
    }
  });

  test('rollback: an older timestamp than the device trusts is refused', async () => {
    const t = agent('1.0.0');
    try {
      assert.equal((await t.a.update('sensor-fw/1.1.0')).state, 'succeeded'); // now trusts the latest
      mirror.state.respond = async (path, up) => (path.endsWith('/timestamp.json') ? oldTimestamp : up());
      const t2 = agent('1.1.0', { dir: t.dir.path });
      const r = await t2.a.update('sensor-fw/1.1.0');
      t2.a.close();
      assert.equal(r.state, 'failed');
      assert.match(
        r.reason ?? '',
        /^BadVersionError: New timestamp version 1 is less than current version \d+$/,
      );
    } finally {
      t.done();
    }
  });

  test('rollback: a release older than what runs is refused unless the signed metadata authorises it', async () => {
    let t = agent('1.1.0');
    try {
      const r = await t.a.update('sensor-fw/1.0.5');
      assert.equal(r.state, 'failed');
      assert.equal(
        r.reason,
        'refusing to downgrade from 1.1.0 to 1.0.5: the signed metadata does not authorise it',
      );
      assert.deepEqual(t.installer.log, []);
    } finally {
      t.done();
    }
    t = agent('1.1.0');
    try {
      const r = await t.a.update('sensor-fw/1.0.1');
      assert.equal(r.state, 'succeeded', r.reason);
      assert.equal(t.installer.current, '1.0.1');
    } finally {
      t.done();
    }
  });

  test('freeze: a mirror that keeps serving an expired timestamp is refused', async () => {
    const frozen = await mirror.upstream(`/ota/${TENANT}/metadata/timestamp.json`);
    mirror.state.respond = async (path, up) => (path.endsWith('/timestamp.json') ? frozen : up());
    const { a, installer, done } = agent('1.0.0');
    // Two days later on the device (tuf-js reads the time from Date); the platform's timestamp lives one.
    mock.timers.enable({ apis: ['Date'], now: Date.now() + 2 * 86_400_000 });
    try {
      const r = await a.update('sensor-fw/1.1.0');
      assert.equal(r.state, 'failed');
      assert.match(r.reason ?? '', /^ExpiredMetadataError: .*timestamp/i);
      assert.deepEqual(installer.log, []);
    } finally {
      mock.timers.reset();
      done();
    }
  });

  test('mix-and-match: targets metadata from another snapshot is refused', async () => {
    mirror.state.respond = async (path, up) => (/\/\d+\.targets\.json$/.test(path) ? oldTargets.body : up());
    const { a, installer, done } = agent('1.0.0');
    try {
      const r = await a.update('sensor-fw/1.1.0');
      assert.equal(r.state, 'failed');
      // The snapshot pins the targets file's length and hash.
      assert.match(
        r.reason ?? '',
        /^RuntimeError: Unable to load targets error Error: Expected length \d+ but got \d+$/,
      );
      assert.deepEqual(installer.log, []);
    } finally {
      done();
    }
  });

  test('wrong hardware and a lying notice are refused from the signed custom data', async () => {
    let t = agent('1.0.0');
    try {
      const r = await t.a.update('other-fw/2.0.0');
      assert.equal(r.state, 'failed');
      assert.equal(r.reason, 'other-fw/2.0.0 is not for this hardware (sensor-v2)');
    } finally {
      t.done();
    }
    t = agent('1.0.0');
    try {
      const r = await t.a.update('sensor-fw/1.1.0', { version: '9.9.9' });
      assert.equal(r.state, 'failed');
      assert.equal(r.reason, 'the notice says 9.9.9 but the signed metadata says 1.1.0');
    } finally {
      t.done();
    }
  });

  test('an interrupted download resumes with a range request', async () => {
    let cut = true;
    mirror.state.respond = async (path, up) => {
      const body = await up();
      if (path.includes('/targets/') && cut) {
        cut = false;
        // Half the file, then the connection drops.
        return (async function* () {
          yield body.subarray(0, body.length / 2);
          throw new Error('connection lost');
        })();
      }
      return body;
    };
    const { a, installer, done } = agent('1.0.0');
    try {
      const r = await a.update('sensor-fw/1.1.0');
      assert.equal(r.state, 'succeeded', r.reason);
      assert.ok(installer.installed?.equals(fw));
      assert.equal(a.transfer.resumed, 1);
      assert.deepEqual(mirror.state.ranges, [`bytes=${fw.length / 2}-`]);
      assert.ok(a.transfer.bytes < fw.length * 1.5, `${a.transfer.bytes} bytes for ${fw.length}`);
    } finally {
      done();
    }
  });

  test('devices without a valid certificate, or denied by policy, get nothing', async () => {
    const other = await enrollDevice(p, 'victim-2');
    const get = (creds: DeviceCredentials) =>
      new Promise<number>((resolve, reject) => {
        const req = request(
          new URL(`/ota/${TENANT}/metadata/timestamp.json`, p.url),
          { ca: p.ca, key: creds.key, cert: creds.chain, agent: false },
          (res) => {
            res.resume();
            resolve(res.statusCode ?? 0);
          },
        );
        req.on('error', reject);
        req.end();
      });
    assert.equal(await get(other), 200);
    assert.equal(
      (
        await p.api('POST', '/api/v1/policies', {
          id: 'no-updates',
          statements: [{ effect: 'deny', actions: ['ota:download'], resources: ['ota/*'] }],
        })
      ).status,
      201,
    );
    assert.equal(
      (
        await p.api('POST', '/api/v1/policies/no-updates/attach', {
          targetType: 'device',
          targetId: 'victim-2',
        })
      ).status,
      200,
    );
    assert.equal(await get(other), 403);
    assert.equal(await get(dev), 200);
    await p.api('POST', '/api/v1/devices/victim-2/revoke', {});
    assert.equal(await get(other), 401);
    const denied = await p.api<{ items: { reason: string }[] }>(
      'GET',
      '/api/v1/audit?action=ota.download&limit=10',
    );
    assert.ok(denied.body.items.some((i) => i.reason === 'policy denies ota:download'));
    assert.ok(canonical({ b: 1, a: 2 }) === '{"a":2,"b":1}');
  });
});
