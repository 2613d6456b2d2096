// The bulwark command run as a child process against a real HTTPS server (the fake API), configured only
// through BULWARK_URL / BULWARK_TOKEN / BULWARK_CA_FILE or the saved login.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { FakeApi } from './helpers/fake-api.ts';
import { makePki, startFakeApi, TOKEN } from './helpers/fake-api.ts';
import { makeRootCa } from './helpers/pki.ts';
import { cliEnv, runCli } from './helpers/run-cli.ts';

const hasOpenssl = spawnSync('sh', ['-c', 'command -v openssl']).status === 0;

let api: FakeApi;
let home: string;
let caFile: string;
let otherCaFile: string;
let env: Record<string, string | undefined>;

before(async () => {
  api = await startFakeApi();
  home = await mkdtemp(join(tmpdir(), 'bulwark-cli-e2e-'));
  caFile = join(home, 'platform-ca.crt');
  otherCaFile = join(home, 'other-ca.crt');
  await writeFile(caFile, api.rootPem);
  await writeFile(otherCaFile, (await makeRootCa('Someone Else')).pem);
  env = cliEnv(home, { BULWARK_URL: api.url, BULWARK_TOKEN: TOKEN, BULWARK_CA_FILE: caFile });
});
after(async () => {
  await api.close();
  await rm(home, { recursive: true, force: true });
});

describe('connection settings and errors', () => {
  it('works with only BULWARK_URL / BULWARK_TOKEN / BULWARK_CA_FILE', async () => {
    const r = await runCli(['whoami'], { env });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^name\s+ops-bot$/m);
    assert.match(r.stdout, /^tenant\s+acme$/m);
  });

  it('reads the token from stdin with --token -', async () => {
    const r = await runCli(['whoami', '--token', '-', '--json'], {
      env: { ...env, BULWARK_TOKEN: undefined },
      stdin: `${TOKEN}\n`,
    });
    assert.equal(r.code, 0, r.stderr);
    assert.equal((JSON.parse(r.stdout) as { name: string }).name, 'ops-bot');
    assert.equal(api.requests.at(-1)?.headers.authorization, `Bearer ${TOKEN}`);
  });

  it('a server certificate from another CA -> exit 3 with the CA hint, nothing on stdout', async () => {
    const r = await runCli(['device', 'list'], { env: { ...env, BULWARK_CA_FILE: otherCaFile } });
    assert.equal(r.code, 3, r.stderr);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /^error: cannot reach https:\/\/127\.0\.0\.1:\d+: .+ \([A-Z_]+\)$/m);
    assert.match(r.stderr, /^hint: .*does BULWARK_CA_FILE \(or --ca-file\) point to the platform CA\?/m);
  });

  it('no CA file with a private CA -> exit 3 too (verification is never skipped)', async () => {
    const r = await runCli(['device', 'list'], { env: { ...env, BULWARK_CA_FILE: undefined } });
    assert.equal(r.code, 3, r.stderr);
  });

  it('a missing CA file -> exit 2 naming the file', async () => {
    const r = await runCli(['device', 'list', '--ca-file', join(home, 'nope.pem')], { env });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /cannot read CA file .*nope\.pem/);
  });

  it('problem+json errors are printed with title, detail and code -> exit 1', async () => {
    const r = await runCli(['device', 'show', 'ghost'], { env });
    assert.equal(r.code, 1);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /^error: Device not found: no device 'ghost' \(ERR_DEVICE_NOT_FOUND\)$/m);
    assert.match(r.stderr, /^request id: req-42$/m);
    const bad = await runCli(['whoami', '--token', 'nope'], { env });
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /^error: Invalid token \(ERR_AUTH_INVALID_TOKEN\)$/m);
    assert.match(bad.stderr, /^hint: .*bulwark login/m);
  });

  it('validation errors list each field', async () => {
    api.override = (req) =>
      req.path === '/api/v1/audit'
        ? {
            status: 400,
            headers: { 'content-type': 'application/problem+json' },
            body: {
              type: 'about:blank',
              title: 'Request validation failed',
              status: 400,
              code: 'ERR_VALIDATION',
              errors: [{ path: '/limit', message: 'must be <= 1000' }],
            },
          }
        : undefined;
    try {
      const r = await runCli(['audit'], { env });
      assert.equal(r.code, 1);
      assert.match(
        r.stderr,
        /^error: Request validation failed \(ERR_VALIDATION\)\n {2}- \/limit: must be <= 1000$/m,
      );
    } finally {
      api.override = undefined;
    }
  });
});

describe('login / logout', () => {
  it('verifies the token, saves it 0600 and later commands use it', async () => {
    const loginHome = await mkdtemp(join(tmpdir(), 'bulwark-cli-login-'));
    try {
      const bare = cliEnv(loginHome);
      const r = await runCli(['login', '--url', api.url, '--ca-file', caFile, '--token', '-'], {
        env: bare,
        stdin: `${TOKEN}\n`,
      });
      assert.equal(r.code, 0, r.stderr);
      assert.match(
        r.stdout,
        /^logged in to https:\/\/127\.0\.0\.1:\d+ as ops-bot \(service-account, role admin, tenant acme\)$/m,
      );
      const file = join(loginHome, '.config', 'bulwark', 'config.json');
      assert.equal((await stat(file)).mode & 0o777, 0o600);
      assert.equal((await stat(join(loginHome, '.config', 'bulwark'))).mode & 0o777, 0o700);
      assert.deepEqual(JSON.parse(await readFile(file, 'utf8')), { url: api.url, token: TOKEN, caFile });
      assert.ok(!r.stdout.includes(TOKEN) && !r.stderr.includes(TOKEN), 'the token is never printed');

      const list = await runCli(['whoami'], { env: bare });
      assert.equal(list.code, 0, list.stderr);
      const out = await runCli(['logout'], { env: bare });
      assert.match(out.stdout, /^removed .*config\.json$/m);
      const after = await runCli(['whoami'], { env: bare });
      assert.equal(after.code, 2);
      assert.match(after.stderr, /no server URL/);
    } finally {
      await rm(loginHome, { recursive: true, force: true });
    }
  });

  it('a rejected token is not saved', async () => {
    const loginHome = await mkdtemp(join(tmpdir(), 'bulwark-cli-login-'));
    try {
      const r = await runCli(['login', '--url', api.url, '--ca-file', caFile, '--token', 'wrong'], {
        env: cliEnv(loginHome),
      });
      assert.equal(r.code, 1);
      await assert.rejects(stat(join(loginHome, '.config', 'bulwark', 'config.json')), { code: 'ENOENT' });
    } finally {
      await rm(loginHome, { recursive: true, force: true });
    }
  });
});

describe('device create', () => {
  it('creates the device, keeps the key local and writes key 0600, chain and CA', async () => {
    const requestsBefore = api.requests.length;
    const r = await runCli(['device', 'create', 'sensor-7', '--attr', 'room=lab', '--attr', 'floor=3'], {
      env,
      cwd: home,
    });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /generating ECDSA P-256 key…/);
    const dir = join(home, 'sensor-7');
    assert.deepEqual((await readdir(dir)).sort(), ['ca.crt', 'device.crt', 'device.key']);
    assert.equal((await stat(join(dir, 'device.key'))).mode & 0o777, 0o600);

    const keyPem = await readFile(join(dir, 'device.key'), 'utf8');
    const chainPem = await readFile(join(dir, 'device.crt'), 'utf8');
    const caPem = await readFile(join(dir, 'ca.crt'), 'utf8');
    assert.match(keyPem, /^-----BEGIN PRIVATE KEY-----/);
    const certs = chainPem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
    assert.equal(certs.length, 2, 'device certificate + issuing CA');
    const leaf = new X509Certificate(certs[0] as string);
    assert.equal(leaf.checkPrivateKey(createPrivateKey(keyPem)), true);
    assert.match(leaf.subject, /CN=sensor-7/);
    assert.equal(caPem.trim(), api.rootPem.trim());

    // Only a CSR went to the server, never the key.
    const sent = api.requests.slice(requestsBefore);
    assert.deepEqual(
      sent.map((q) => `${q.method} ${q.path}`),
      ['POST /api/v1/devices', 'POST /api/v1/devices/sensor-7/certificates'],
    );
    assert.deepEqual(sent[0]?.body, { id: 'sensor-7', attributes: { room: 'lab', floor: '3' } });
    assert.match(String((sent[1]?.body as { csr: string }).csr), /^-----BEGIN CERTIFICATE REQUEST-----/);
    assert.ok(!JSON.stringify(sent.map((q) => q.body)).includes('PRIVATE KEY'));

    assert.match(r.stdout, /^private key\s+sensor-7\/device\.key \(mode 0600, keep it secret\)$/m);
    assert.match(
      r.stdout,
      /mosquitto_pub -h 127\.0\.0\.1 -p 8883 --cafile sensor-7\/ca\.crt --cert sensor-7\/device\.crt --key sensor-7\/device\.key -i sensor-7 -q 1 -t devices\/sensor-7\/telemetry -m '\{"temperature":21\.5\}'/,
    );

    if (hasOpenssl) {
      const issuing = join(home, 'issuing.pem');
      await writeFile(issuing, certs[1] as string);
      const v = spawnSync(
        'openssl',
        ['verify', '-CAfile', join(dir, 'ca.crt'), '-untrusted', issuing, join(dir, 'device.crt')],
        {
          encoding: 'utf8',
        },
      );
      assert.equal(v.status, 0, v.stdout + v.stderr);
    }
  });

  it('refuses to overwrite existing files before contacting the server', async () => {
    const requestsBefore = api.requests.length;
    const before = await readFile(join(home, 'sensor-7', 'device.key'), 'utf8');
    const r = await runCli(['device', 'create', 'sensor-8', '--out', 'sensor-7'], { env, cwd: home });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /device\.key already exists; refusing to overwrite it/);
    assert.equal(await readFile(join(home, 'sensor-7', 'device.key'), 'utf8'), before);
    assert.equal(api.requests.length, requestsBefore);
  });

  it('an existing device fails with a hint, and leaves no key behind', async () => {
    const r = await runCli(['device', 'create', 'sensor-7', '--out', 'again'], { env, cwd: home });
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      /^error: Device already exists: device 'sensor-7' already exists \(ERR_DEVICE_EXISTS\)$/m,
    );
    assert.match(r.stderr, /^hint: .*--existing/m);
    // The directory this run made is gone again, with the key that got no certificate.
    await assert.rejects(stat(join(home, 'again')), { code: 'ENOENT' });
  });

  for (const keyType of ['p384', 'ed25519', 'rsa2048']) {
    it(`--existing issues a new ${keyType} certificate for the device (--json)`, async () => {
      const out = `renew-${keyType}`;
      const r = await runCli(
        ['device', 'create', 'sensor-7', '--existing', '--key-type', keyType, '--out', out, '--json'],
        {
          env,
          cwd: home,
        },
      );
      assert.equal(r.code, 0, r.stderr);
      const result = JSON.parse(r.stdout) as {
        device: { id: string };
        certificate: { serial: string; chain: string };
        files: Record<string, string>;
      };
      assert.equal(result.device.id, 'sensor-7');
      assert.deepEqual(result.files, {
        key: join(home, out, 'device.key'),
        cert: join(home, out, 'device.crt'),
        ca: join(home, out, 'ca.crt'),
      });
      assert.equal(await readFile(result.files.cert as string, 'utf8'), result.certificate.chain);
      const leaf = new X509Certificate(await readFile(result.files.cert as string));
      assert.equal(leaf.checkPrivateKey(createPrivateKey(await readFile(result.files.key as string))), true);
    });
  }
});

describe('--json prints the API JSON as it is', () => {
  it('device show', async () => {
    const body = {
      id: 'sensor-7',
      tenant: 'acme',
      status: 'active',
      attributes: { room: 'lab' },
      createdAt: '2025-06-01T12:00:01.000Z',
      updatedAt: '2025-06-01T12:00:01.000Z',
      certificates: [],
      connected: true,
      fieldFromTheFuture: { nested: [1, 2, 3] },
    };
    api.override = (req) => (req.path === '/api/v1/devices/sensor-7' ? { status: 200, body } : undefined);
    try {
      const r = await runCli(['device', 'show', 'sensor-7', '--json'], { env });
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(JSON.parse(r.stdout), body);
      assert.equal(r.stdout, JSON.stringify(body, null, 2) + '\n');
    } finally {
      api.override = undefined;
    }
  });

  it('device list (one page, and --all merged into one page)', async () => {
    const template = api.devices.get('sensor-7');
    assert.ok(template);
    for (const id of ['a-1', 'a-2', 'a-3']) api.devices.set(id, { ...template, id });
    const one = await runCli(['device', 'list', '--limit', '2', '--json'], { env });
    assert.equal(one.code, 0, one.stderr);
    const page = JSON.parse(one.stdout) as { items: { id: string }[]; nextCursor: string | null };
    assert.equal(page.items.length, 2);
    assert.equal(page.nextCursor, '2');
    const all = await runCli(['device', 'list', '--limit', '2', '--all', '--json'], { env });
    const merged = JSON.parse(all.stdout) as typeof page;
    assert.deepEqual(
      merged.items.map((d) => d.id),
      [...api.devices.keys()],
    );
    assert.equal(merged.nextCursor, null);
  });
});

describe('paging', () => {
  it('--all stops with an error when the server repeats a cursor', async () => {
    api.override = (req) =>
      req.path === '/api/v1/audit' ? { status: 200, body: { items: [], nextCursor: 'again' } } : undefined;
    try {
      const r = await runCli(['audit', '--all'], { env });
      assert.equal(r.code, 1);
      assert.match(r.stderr, /returned the cursor again twice/);
    } finally {
      api.override = undefined;
    }
  });
});

describe('the other commands', () => {
  it('device list prints an aligned table and points at the next page', async () => {
    const r = await runCli(['device', 'list', '--limit', '2'], { env });
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trimEnd().split('\n');
    assert.match(lines[0] as string, /^ID\s+STATUS\s+CREATED\s+ATTRIBUTES$/);
    assert.match(lines[1] as string, /^sensor-7\s+active\s+\S+\s+room=lab, floor=3$/);
    assert.equal(lines.length, 3);
    assert.equal((lines[0] as string).indexOf('STATUS'), (lines[1] as string).indexOf('active'));
    assert.match(r.stderr, /more devices: add --all, or --cursor 2/);
  });

  it('device show, cert list, cert revoke, device revoke, disable, enable, delete', async () => {
    const show = await runCli(['device', 'show', 'sensor-7'], { env });
    assert.equal(show.code, 0, show.stderr);
    assert.match(show.stdout, /^status\s+active$/m);
    assert.match(show.stdout, /^certificates:\nSERIAL\s+STATUS\s+KEY/m);

    const serials = api.certificates.filter((c) => c.deviceId === 'sensor-7').map((c) => c.serial);
    assert.equal(serials.length, 4);
    const list = await runCli(['cert', 'list', '--device', 'sensor-7'], { env });
    assert.equal(list.code, 0, list.stderr);
    for (const s of serials) assert.ok(list.stdout.includes(s));

    const one = await runCli(['cert', 'revoke', serials[0] as string, '--reason', 'superseded'], { env });
    assert.equal(one.code, 0, one.stderr);
    assert.match(one.stdout, /^status\s+revoked$/m);
    assert.deepEqual(api.requests.at(-1)?.body, { reason: 'superseded' });

    const sent = api.requests.length;
    const badReason = await runCli(['device', 'revoke', 'sensor-7', '--reason', 'stolen'], { env });
    assert.equal(badReason.code, 2);
    assert.match(badReason.stderr, /--reason must be one of unspecified, keyCompromise/);
    assert.equal(api.requests.length, sent, 'nothing sent');

    // Reason names are matched case-insensitively and sent in their RFC 5280 spelling.
    const all = await runCli(['device', 'revoke', 'sensor-7', '--reason', 'keycompromise'], { env });
    assert.equal(all.code, 0, all.stderr);
    assert.match(all.stdout, /^revoked 3 certificates of sensor-7:$/m);
    assert.deepEqual(api.requests.at(-1)?.body, { reason: 'keyCompromise' });

    const dis = await runCli(['device', 'disable', 'sensor-7'], { env });
    assert.equal(dis.stdout, 'device sensor-7 is disabled\n');
    const en = await runCli(['device', 'enable', 'sensor-7', '--json'], { env });
    assert.equal((JSON.parse(en.stdout) as { status: string }).status, 'active');
    const del = await runCli(['device', 'delete', 'a-3'], { env });
    assert.equal(del.stdout, 'deleted device a-3\n');
    const delJson = await runCli(['device', 'delete', 'a-2', '--json'], { env });
    assert.equal(delJson.code, 0);
    assert.equal(delJson.stdout, '');
    assert.equal(api.devices.has('a-2'), false);
  });

  it('audit prints a table (actor and target as type:id) and filters by action', async () => {
    api.audit.push(
      {
        seq: 2,
        ts: '2025-06-01T12:00:05Z',
        actor: { type: 'user', id: 'u-1' },
        action: 'cert.revoke',
        target: { type: 'device', id: 'sensor-7' },
        outcome: 'success',
        reason: 'keyCompromise',
      },
      { seq: 1, ts: '2025-06-01T12:00:00Z', actor: 'ops-bot', action: 'device.create', outcome: 'success' },
    );
    const r = await runCli(['audit', '--limit', '10'], { env });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^SEQ\s+TIME\s+ACTOR\s+ACTION\s+TARGET\s+OUTCOME\s+REASON$/m);
    assert.match(
      r.stdout,
      /^ {2}2\s+2025-06-01T12:00:05Z\s+user:u-1\s+cert\.revoke\s+device:sensor-7\s+success\s+keyCompromise$/m,
    );
    assert.match(r.stdout, /^ {2}1\s+2025-06-01T12:00:00Z\s+ops-bot\s+device\.create\s+success$/m);
    const f = await runCli(['audit', '--action', 'device.create', '--json'], { env });
    assert.equal(api.requests.at(-1)?.query.get('action'), 'device.create');
    assert.deepEqual(
      (JSON.parse(f.stdout) as { items: { seq: number }[] }).items.map((e) => e.seq),
      [1],
    );
  });
});

describe('telemetry', () => {
  before(() => {
    for (let i = 0; i < 5; i++) {
      api.telemetry.push({
        deviceId: 'sensor-7',
        ts: `2025-06-01T12:00:0${i}.000Z`,
        ...(i % 2 === 0 ? { stream: 'env' } : {}),
        data: { temperature: 20 + i },
      });
    }
  });

  it('shows the latest rows oldest first', async () => {
    const r = await runCli(['telemetry', 'sensor-7', '--limit', '3'], { env });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(
      r.stdout,
      [
        'TIME                      STREAM  DATA',
        '2025-06-01T12:00:02.000Z  env     {"temperature":22}',
        '2025-06-01T12:00:03.000Z          {"temperature":23}',
        '2025-06-01T12:00:04.000Z  env     {"temperature":24}',
        '',
      ].join('\n'),
    );
    const q = api.requests.at(-1)?.query;
    assert.equal(q?.get('order'), 'desc');
    assert.equal(q?.get('limit'), '3');
  });

  it('passes --from/--to/--stream and prints the page as is with --json', async () => {
    const r = await runCli(
      [
        'telemetry',
        'sensor-7',
        '--from',
        '2025-06-01T12:00:01Z',
        '--to',
        '2025-06-01T12:00:04Z',
        '--stream',
        'env',
        '--json',
      ],
      { env },
    );
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), {
      items: [
        { ts: '2025-06-01T12:00:02.000Z', stream: 'env', data: { temperature: 22 } },
        { ts: '2025-06-01T12:00:04.000Z', stream: 'env', data: { temperature: 24 } },
      ],
      nextCursor: null,
    });
    const q = api.requests.at(-1)?.query;
    assert.equal(q?.get('order'), 'asc');
    assert.equal(q?.get('stream'), 'env');
  });

  it('--follow prints new rows once each and stops cleanly on SIGINT', async () => {
    let added = false;
    let interrupted = false;
    const r = await runCli(
      ['telemetry', 'sensor-7', '--follow', '--interval', '0.05', '--limit', '2', '--json'],
      {
        env,
        onStdout: (text, child) => {
          const lines = text.trim().split('\n');
          if (!added && lines.length >= 2) {
            // Same timestamp as the newest row (from is inclusive) plus a later one.
            api.telemetry.push(
              {
                deviceId: 'sensor-7',
                ts: '2025-06-01T12:00:04.000Z',
                stream: 'other',
                data: { temperature: 99 },
              },
              { deviceId: 'sensor-7', ts: '2025-06-01T12:00:05.000Z', data: { temperature: 25 } },
            );
            added = true;
          }
          if (!interrupted && lines.length >= 4) {
            interrupted = true;
            // Let at least one more poll pass so a duplicate would show up before we stop.
            api.onRequest = () => {
              api.onRequest = undefined;
              child.kill('SIGINT');
            };
          }
        },
      },
    );
    assert.equal(r.code, 0, r.stderr);
    const rows = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { ts: string; data: { temperature: number } });
    assert.deepEqual(
      rows.map((x) => x.data.temperature),
      [23, 24, 99, 25],
    );
  });

  it('--follow survives a server restart and goes on where it left off', async () => {
    const pki = await makePki('Restart');
    let server = await startFakeApi(pki);
    const port = Number(new URL(server.url).port);
    const caPath = join(home, 'restart-ca.crt');
    await writeFile(caPath, server.rootPem);
    const rows = (n: number) => ({ deviceId: 'dev-r', ts: `2025-06-01T12:00:0${n}.000Z`, data: { n } });
    server.devices.set('dev-r', {
      id: 'dev-r',
      tenant: 'acme',
      status: 'active',
      attributes: {},
      createdAt: '',
      updatedAt: '',
    });
    server.telemetry.push(rows(1));
    let phase = 0;
    let sawRetry: () => void = () => {};
    const retrying = new Promise<void>((resolve) => (sawRetry = resolve));
    const r = await runCli(['telemetry', 'dev-r', '--follow', '--interval', '0.05', '--json'], {
      env: { ...env, BULWARK_URL: server.url, BULWARK_CA_FILE: caPath },
      onStderr: (text) => {
        if (text.includes('retrying')) sawRetry();
      },
      onStdout: (text, child) => {
        const n = text.trim().split('\n').length;
        if (phase === 0 && n === 1) {
          phase = 1;
          // Stop the server; once the CLI has said it is retrying, start a new one on the same port.
          void server.close().then(async () => {
            await retrying;
            server = await startFakeApi(pki, port);
            server.devices.set('dev-r', {
              id: 'dev-r',
              tenant: 'acme',
              status: 'active',
              attributes: {},
              createdAt: '',
              updatedAt: '',
            });
            server.telemetry.push(rows(1), rows(2));
          });
        }
        if (phase === 1 && n === 2) {
          phase = 2;
          child.kill('SIGINT');
        }
      },
    });
    await server.close();
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(
      r.stdout
        .trim()
        .split('\n')
        .map((l) => (JSON.parse(l) as { data: { n: number } }).data.n),
      [1, 2],
    );
    assert.match(r.stderr, /^warning: cannot reach .*; retrying every 0\.05 s$/m);
    assert.match(r.stderr, /^reconnected$/m);
  });
});
