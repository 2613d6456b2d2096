// Security posture: the checks (capability reports, policy lint, the tamper report parser with a table
// of malformed inputs), the store on SQLite and PostgreSQL, and end to end: a real device over MQTT
// reports capabilities and tampering, a policy is written, findings appear, are resolved, open again,
// and each new one reaches only the webhook subscribers allowed to read it.
import 'reflect-metadata';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseDeviceTopic, topics, type CapabilityReport } from '@bulwark/protocol';
import { fixedClock, type AppError } from '../src/kernel/index.ts';
import { migrate } from '../src/infra/database/migrate.ts';
import {
  capabilityObservations,
  createPostureService,
  createPostureStore,
  parseTamperReport,
  policyObservations,
  type Finding,
} from '../src/modules/posture/index.ts';
import { backends } from '../../../test/support/db.ts';
import {
  connectDevice,
  enrollDevice,
  startPlatform,
  waitFor,
  type Platform,
} from '../../../test/support/platform.ts';
import { call, type Reply } from './support/iam-http.ts';
import { tempDir } from '../../../test/support/db.ts';
import { runInProcess } from '../../../packages/cli/test/helpers/run-cli.ts';

const SEQ_IDS = () => {
  let n = 0;
  return {
    uuid: () => `00000000-0000-4000-8000-${String(++n).padStart(12, '0')}`,
    token: () => 'x',
    serial: () => '01',
  };
};

describe('posture checks', () => {
  test('capability reports: listening sockets, weak TLS and keys, key storage, update method, gaps', () => {
    const kinds = (r: CapabilityReport) =>
      capabilityObservations('d1', r).map((o) => `${o.kind}:${o.severity}`);
    assert.deepEqual(
      kinds({
        keyStorage: 'tpm',
        updateMethod: 'ab-partition',
        tls: { versions: ['TLSv1.2', 'TLSv1.3'], keyTypes: ['p256', 'ed25519', 'rsa2048'] },
        listeningPorts: [],
      }),
      [],
      'a device that only dials out, with a hardware key, has nothing to report',
    );
    assert.deepEqual(
      kinds({
        keyStorage: 'file',
        updateMethod: 'none',
        tls: { versions: ['TLSv1', 'TLSv1.2'], keyTypes: ['rsa1024', 'p256'] },
        listeningPorts: [
          { protocol: 'tcp', address: '0.0.0.0', port: 22 },
          { protocol: 'tcp6', address: '::1', port: 8080 },
          { protocol: 'udp', address: '127.0.0.1', port: 53 },
        ],
      }),
      [
        'listening-port:high',
        'listening-port:low',
        'listening-port:low',
        'weak-tls-version:medium',
        'weak-key-type:medium',
        'key-in-software:low',
        'no-update-method:medium',
      ],
    );
    assert.deepEqual(kinds({ firmware: { version: '1' } }), [
      'missing-capability:low',
      'missing-capability:low',
      'missing-capability:low',
    ]);
    // Subjects are stable: the same port on the same device is the same finding.
    const a = capabilityObservations('d1', {
      listeningPorts: [{ protocol: 'tcp', address: '::', port: 22 }],
    });
    const b = capabilityObservations('d1', {
      listeningPorts: [{ protocol: 'tcp', address: '::', port: 22 }],
    });
    assert.equal(a[0]?.subject, b[0]?.subject);
  });

  test('policy lint: one observation per statement and rule, keyed by sid when there is one', () => {
    const obs = policyObservations('p1', [
      { rule: 'wildcard-action', severity: 'high', statement: 0, sid: 'all', message: 'action `*`' },
      { rule: 'resource-everything', severity: 'high', statement: 1, sid: undefined, message: 'everything' },
    ]);
    assert.deepEqual(
      obs.map((o) => [o.subject, o.kind, o.severity]),
      [
        ['policy:p1/sid:all/wildcard-action', 'policy-lint', 'high'],
        ['policy:p1/statement:1/resource-everything', 'policy-lint', 'high'],
      ],
    );
  });

  test('tamper reports: the exact shape, every malformed input refused', () => {
    assert.deepEqual(parseTamperReport(Buffer.from('{"kind":"enclosure-opened"}')), {
      kind: 'enclosure-opened',
    });
    assert.deepEqual(
      parseTamperReport(
        Buffer.from('{"kind":"debug-port","detail":"JTAG attached","at":"2026-05-01T10:00:00.123Z"}'),
      ),
      { kind: 'debug-port', detail: 'JTAG attached', at: '2026-05-01T10:00:00.123Z' },
    );
    const malformed: [string, string | Buffer][] = [
      ['not JSON', '{kind:'],
      ['empty', ''],
      ['array', '[{"kind":"x"}]'],
      ['string', '"enclosure-opened"'],
      ['null', 'null'],
      ['no kind', '{}'],
      ['kind not a string', '{"kind":7}'],
      ['kind empty', '{"kind":""}'],
      ['kind with a slash', '{"kind":"a/b"}'],
      ['kind with a space', '{"kind":"a b"}'],
      ['kind too long', JSON.stringify({ kind: 'k'.repeat(65) })],
      ['severity chosen by the device', '{"kind":"x","severity":"low"}'],
      ['unknown field', '{"kind":"x","extra":1}'],
      ['detail not a string', '{"kind":"x","detail":{"a":1}}'],
      ['detail too long', JSON.stringify({ kind: 'x', detail: 'd'.repeat(513) })],
      ['at not a time', '{"kind":"x","at":"yesterday"}'],
      ['at without zone', '{"kind":"x","at":"2026-05-01T10:00:00"}'],
      ['at impossible', '{"kind":"x","at":"2026-13-45T10:00:00Z"}'],
      ['prototype key', '{"kind":"x","__proto__":{"a":1}}'],
      ['too large', Buffer.alloc(5000, 0x20)],
    ];
    for (const [name, input] of malformed) {
      assert.throws(
        () => parseTamperReport(Buffer.isBuffer(input) ? input : Buffer.from(input)),
        (e: AppError) => e.code === 'ERR_POSTURE_TAMPER_INVALID',
        name,
      );
    }
  });

  test('the tamper topic is in each device’s own namespace', () => {
    assert.equal(topics.tamper('d-1'), 'devices/d-1/events/tamper');
    assert.deepEqual(parseDeviceTopic('devices/d-1/events/tamper'), { kind: 'tamper', deviceId: 'd-1' });
    assert.equal(parseDeviceTopic('devices/d-1/events/tamper/x')?.kind, 'other');
    assert.equal(parseDeviceTopic('devices/d-1/events')?.kind, 'other');
  });
});

for (const b of backends) {
  describe(`posture store and service: ${b.name}`, { skip: b.skip }, () => {
    let cleanup: () => Promise<void>;
    const clock = fixedClock(Date.parse('2026-05-01T00:00:00Z'));
    const opened: Finding[] = [];
    let posture: ReturnType<typeof createPostureService>;
    before(async () => {
      const o = await b.open();
      cleanup = o.cleanup;
      await migrate(o.db);
      posture = createPostureService({
        store: createPostureStore(o.db),
        clock,
        ids: SEQ_IDS(),
        opened: (f) => void opened.push(f),
      });
    });
    after(async () => {
      await cleanup();
    });

    test('observed, seen again, resolved when no longer observed, opened again, listed and paged', async () => {
      const report: CapabilityReport = {
        keyStorage: 'tpm',
        updateMethod: 'package',
        tls: { versions: ['TLSv1.3'], keyTypes: ['p256'] },
        listeningPorts: [
          { protocol: 'tcp', address: '0.0.0.0', port: 22 },
          { protocol: 'tcp', address: '0.0.0.0', port: 23 },
        ],
      };
      assert.equal((await posture.capabilitiesReported('t', 'd1', report)).length, 2);
      clock.advance(1000);
      assert.equal((await posture.capabilitiesReported('t', 'd1', report)).length, 0, 'nothing new');
      const listed = await posture.list('t', { status: 'open' });
      assert.deepEqual(
        listed.items.map((f) => [f.kind, f.occurrences, f.firstSeenAt < f.lastSeenAt]),
        [
          ['listening-port', 2, true],
          ['listening-port', 2, true],
        ],
      );
      // Port 23 closed: its finding is resolved by the platform; 22 stays open.
      clock.advance(1000);
      await posture.capabilitiesReported('t', 'd1', {
        ...report,
        listeningPorts: (report.listeningPorts ?? []).slice(0, 1),
      });
      const resolved = await posture.list('t', { status: 'resolved' });
      assert.equal(resolved.items.length, 1);
      assert.equal(resolved.items[0]?.resolvedBy, 'system');
      assert.deepEqual(resolved.items[0]?.details.port, 23);
      // Port 23 open again: the same finding opens again, and is announced again.
      opened.length = 0;
      clock.advance(1000);
      const again = await posture.capabilitiesReported('t', 'd1', report);
      assert.equal(again.length, 1);
      assert.equal(again[0]?.id, resolved.items[0]?.id);
      assert.equal(again[0]?.status, 'open');
      assert.equal(opened.length, 1);
      // A person resolves one; resolving twice changes nothing.
      const id = again[0]?.id ?? '';
      assert.equal((await posture.resolve('t', id, 'alice', 'accepted')).resolved, true);
      const twice = await posture.resolve('t', id, 'bob', undefined);
      assert.deepEqual(
        [twice.resolved, twice.finding.resolvedBy, twice.finding.resolution],
        [false, 'alice', 'accepted'],
      );
      await assert.rejects(posture.resolve('other-tenant', id, 'x', undefined), /Finding not found/);
      // Tamper findings are never resolved by a later report; repeated reports count.
      await posture.tamperReported('t', 'd1', Buffer.from('{"kind":"enclosure-opened"}'));
      await posture.tamperReported('t', 'd1', Buffer.from('{"kind":"enclosure-opened"}'));
      await posture.capabilitiesReported('t', 'd1', report);
      const tamper = await posture.list('t', { kind: 'tamper' });
      assert.deepEqual(
        tamper.items.map((f) => [f.status, f.severity, f.occurrences]),
        [['open', 'critical', 2]],
      );
      // Policy findings follow the policy; deleting it resolves them.
      await posture.policyWritten('t', 'p1', [
        { rule: 'wildcard-action', severity: 'high', statement: 0, sid: undefined, message: 'x' },
      ]);
      assert.equal((await posture.list('t', { kind: 'policy-lint', status: 'open' })).items.length, 1);
      await posture.policyWritten('t', 'p1', null);
      assert.equal((await posture.list('t', { kind: 'policy-lint', status: 'open' })).items.length, 0);
      // Paging: newest first, every finding once.
      const seen: string[] = [];
      let cursor: string | undefined;
      do {
        const page = await posture.list('t', { limit: 2, ...(cursor ? { cursor } : {}) });
        seen.push(...page.items.map((f) => f.id));
        cursor = page.nextCursor ?? undefined;
      } while (cursor);
      const all = await posture.list('t', { limit: 500 });
      assert.deepEqual(
        seen,
        all.items.map((f) => f.id),
      );
      assert.equal(new Set(seen).size, seen.length);
      // Filters and tenants.
      assert.equal((await posture.list('t', { deviceId: 'nope' })).items.length, 0);
      assert.equal((await posture.list('other', {})).items.length, 0);
      assert.ok((await posture.list('t', { severity: 'high' })).items.every((f) => f.severity === 'high'));
      // The device is deleted: its open findings are resolved.
      assert.ok((await posture.deviceDeleted('t', 'd1')) >= 1);
      assert.equal((await posture.list('t', { deviceId: 'd1', status: 'open' })).items.length, 0);
    });
  });
}

describe('posture end to end', () => {
  const clock = fixedClock(Date.now());
  let p: Platform;
  let receiver: Server;
  let base = '';
  const received: { path: string; body: string }[] = [];
  const api = <T = unknown>(method: string, path: string, body?: unknown, token = p.token) =>
    call<T>(p.url, p.ca, method, path, { token, ...(body !== undefined ? { body } : {}) });
  const expectCode = (r: Reply, status: number, code: string) => {
    assert.equal(r.status, status, JSON.stringify(r.body));
    assert.equal((r.body as { code: string }).code, code);
  };
  interface FindingView {
    id: string;
    deviceId: string | null;
    kind: string;
    severity: string;
    status: string;
    details: Record<string, unknown>;
    resolvedBy: string | null;
    occurrences: number;
  }
  const findings = async (query: string) => {
    const r = await api<{ items: FindingView[] }>('GET', `/api/v1/posture/findings?${query}`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body.items;
  };
  const serviceToken = async (name: string, role: string, fleet?: string) => {
    const sa = await api<{ id: string }>('POST', '/api/v1/service-accounts', {
      name,
      role,
      ...(fleet ? { fleet } : {}),
    });
    assert.equal(sa.status, 201, JSON.stringify(sa.body));
    const t = await api<{ secret: string }>('POST', `/api/v1/accounts/${sa.body.id}/tokens`, { name: 't' });
    return { id: sa.body.id, token: t.body.secret };
  };
  const events = (path: string) =>
    received
      .filter((r) => r.path === path)
      .map((r) => JSON.parse(r.body) as { type: string; data: Record<string, unknown> });
  const drain = async () => {
    await p.app.services.audit.flush();
    await new Promise((r) => setTimeout(r, 20));
    await p.app.services.webhooks.deliverDue(500);
  };

  before(async () => {
    receiver = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        received.push({ path: req.url ?? '', body: Buffer.concat(chunks).toString('utf8') });
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', () => r()));
    base = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;
    p = await startPlatform({
      clock,
      iam: { scrypt: { logN: 10, r: 8, p: 1 } },
      webhooks: { allowInsecureLoopback: true },
    });
  });
  after(async () => {
    await p.close();
    receiver.close();
  });

  test('a device listening on a port and offering old TLS: findings, events for those allowed to read them', async () => {
    const auditor = await serviceToken('posture-auditor', 'auditor');
    const viewer = await serviceToken('posture-viewer', 'viewer');
    for (const [who, path] of [
      [auditor.id, '/auditor'],
      [viewer.id, '/viewer'],
    ] as const) {
      const sub = await api('POST', '/api/v1/webhooks', {
        serviceAccountId: who,
        url: `${base}${path}`,
        events: ['posture.finding'],
      });
      assert.equal(sub.status, 201, JSON.stringify(sub.body));
    }
    const creds = await enrollDevice(p, 'cam-1');
    const c = await connectDevice(p, creds, { clientId: 'cam-1', protocolVersion: 5 });
    const report: CapabilityReport = {
      keyStorage: 'secure-element',
      updateMethod: 'ab-partition',
      tls: { versions: ['TLSv1.1', 'TLSv1.2'], keyTypes: ['p256'] },
      listeningPorts: [{ protocol: 'tcp', address: '0.0.0.0', port: 23 }],
    };
    await c.publishAsync(topics.capabilities('cam-1'), JSON.stringify(report), { qos: 1 });
    const open = await findings('deviceId=cam-1&status=open');
    assert.deepEqual(open.map((f) => `${f.kind}:${f.severity}`).sort(), [
      'listening-port:high',
      'weak-tls-version:medium',
    ]);
    await waitFor(async () => {
      await drain();
      return events('/auditor').length >= 2 ? true : undefined;
    });
    const got = events('/auditor');
    assert.ok(got.every((e) => e.type === 'posture.finding'));
    const port = got.find((e) => e.data.kind === 'listening-port');
    assert.equal(port?.data.deviceId, 'cam-1');
    assert.equal(port?.data.severity, 'high');
    assert.deepEqual((port?.data.details as Record<string, unknown>).port, 23);
    assert.ok(typeof port?.data.findingId === 'string');
    // The viewer's service account may not read posture: it hears nothing.
    await drain();
    assert.deepEqual(events('/viewer'), []);

    // Port closed in the next report: resolved by the platform; no new event.
    const before = events('/auditor').length;
    await c.publishAsync(
      topics.capabilities('cam-1'),
      JSON.stringify({ ...report, tls: { versions: ['TLSv1.2'], keyTypes: ['p256'] }, listeningPorts: [] }),
      { qos: 1 },
    );
    const after = await findings('deviceId=cam-1');
    assert.ok(
      after.every((f) => f.status === 'resolved' && f.resolvedBy === 'system'),
      JSON.stringify(after),
    );
    await drain();
    assert.equal(events('/auditor').length, before);
    await c.endAsync();
  });

  test('a tamper report is a critical finding; malformed reports and other devices’ topics are refused', async () => {
    const creds = await enrollDevice(p, 'meter-1');
    await enrollDevice(p, 'meter-2');
    const c = await connectDevice(p, creds, { clientId: 'meter-1', protocolVersion: 5 });
    await c.publishAsync(topics.tamper('meter-1'), '{"kind":"enclosure-opened","detail":"lid switch"}', {
      qos: 1,
    });
    const [f] = await findings('kind=tamper&deviceId=meter-1');
    assert.deepEqual(
      [f?.severity, f?.status, f?.details.tamper, f?.details.detail],
      ['critical', 'open', 'enclosure-opened', 'lid switch'],
    );
    // A malformed report is refused with a reason code and stores nothing.
    await assert.rejects(
      c.publishAsync(topics.tamper('meter-1'), '{"kind":"x","severity":"low"}', { qos: 1 }),
      /ERR_POSTURE_TAMPER_INVALID|Payload format invalid|153/,
    );
    // Another device's tamper topic is outside this device's namespace: the policy refuses it.
    await c.publishAsync(topics.tamper('meter-2'), '{"kind":"enclosure-opened"}', { qos: 1 }).catch(() => {});
    assert.deepEqual(await findings('deviceId=meter-2'), []);
    assert.equal((await findings('kind=tamper&deviceId=meter-1')).length, 1);
    await c.endAsync().catch(() => {});
  });

  test('a policy written with overly broad statements: lint findings that follow the policy', async () => {
    const created = await api<{ id: string; version: number }>('POST', '/api/v1/policies', {
      id: 'too-broad',
      statements: [{ sid: 'all', effect: 'allow', actions: ['*'], resources: ['bulwark:default:*'] }],
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const lint = await findings('kind=policy-lint&status=open');
    const rules = lint.filter((f) => f.details.policyId === 'too-broad').map((f) => f.details.rule);
    assert.ok(rules.includes('wildcard-action'), JSON.stringify(lint));
    assert.ok(lint.every((f) => f.deviceId === null));
    const fixed = await api('PUT', '/api/v1/policies/too-broad', {
      statements: [
        {
          sid: 'own',
          effect: 'allow',
          actions: ['mqtt:publish'],
          resources: ['bulwark:default:topic/devices/${device.id}/data'],
        },
      ],
    });
    assert.equal(fixed.status, 200, JSON.stringify(fixed.body));
    const afterFix = (await findings('kind=policy-lint')).filter((f) => f.details.policyId === 'too-broad');
    assert.ok(
      afterFix.every((f) => f.status === 'resolved'),
      JSON.stringify(afterFix),
    );
  });

  test('resolving: security officer yes, auditor no; audited; a foreign tenant sees nothing', async () => {
    const [f] = await findings('kind=tamper&status=open');
    assert.ok(f);
    const officer = await serviceToken('posture-officer', 'security-officer');
    const auditor = await serviceToken('posture-reader', 'auditor');
    expectCode(
      await api('POST', `/api/v1/posture/findings/${f.id}/resolve`, { note: 'x' }, auditor.token),
      403,
      'ERR_POLICY_DENIED',
    );
    assert.equal(
      (await api('GET', `/api/v1/posture/findings/${f.id}`, undefined, auditor.token)).status,
      200,
    );
    const r = await api<FindingView>(
      'POST',
      `/api/v1/posture/findings/${f.id}/resolve`,
      { note: 'enclosure inspected, seal replaced' },
      officer.token,
    );
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual([r.body.status, r.body.resolvedBy], ['resolved', officer.id]);
    const again = await api<FindingView>(
      'POST',
      `/api/v1/posture/findings/${f.id}/resolve`,
      {},
      officer.token,
    );
    assert.equal(again.status, 200, JSON.stringify(again.body));
    assert.equal(again.body.status, 'resolved');
    await p.app.services.audit.flush();
    const audit = await api<{ items: { action: string; target: { id: string } }[] }>(
      'GET',
      '/api/v1/audit?action=posture.resolve',
    );
    assert.equal(
      audit.body.items.filter((e) => e.target.id === f.id).length,
      1,
      'resolved once, audited once',
    );
    expectCode(
      await api('GET', '/api/v1/posture/findings/00000000-0000-4000-8000-000000000000'),
      404,
      'ERR_POSTURE_FINDING_NOT_FOUND',
    );
    const iam = p.app.services.iam;
    await iam.ensureTenant('other');
    const other = await iam.bootstrapOwner('other');
    assert.ok(other);
    const foreign = await api<{ items: unknown[] }>(
      'GET',
      '/api/v1/posture/findings',
      undefined,
      other.token,
    );
    assert.deepEqual(foreign.body.items, []);
    expectCode(
      await api('GET', `/api/v1/posture/findings/${f.id}`, undefined, other.token),
      404,
      'ERR_POSTURE_FINDING_NOT_FOUND',
    );
  });

  test('bulwark posture list | show | resolve', async () => {
    const work = tempDir('bulwark-posture-cli-');
    try {
      const env = {
        HOME: work.path,
        BULWARK_CONFIG_DIR: `${work.path}/config`,
        BULWARK_URL: p.url,
        BULWARK_TOKEN: p.token,
        BULWARK_CA_FILE: p.app.paths.caFile,
      };
      const cli = (...args: string[]) => runInProcess(args, { env, cwd: work.path });
      await p.app.services.posture.tamperReported('default', 'cam-1', Buffer.from('{"kind":"cli-test"}'));
      const listed = await cli('posture', 'list', '--status', 'open', '--kind', 'tamper', '--json');
      assert.equal(listed.code, 0, listed.stderr);
      const item = (JSON.parse(listed.stdout) as { items: FindingView[] }).items.find(
        (f) => f.details.tamper === 'cli-test',
      );
      assert.ok(item);
      const table = await cli('posture', 'list', '--device', 'cam-1');
      assert.match(table.stdout, /critical\s+tamper\s+cam-1\s+open/);
      const shown = await cli('posture', 'show', item.id);
      assert.match(shown.stdout, /cam-1 reported tampering: cli-test/);
      const resolved = await cli('posture', 'resolve', item.id, '--note', 'inspected');
      assert.equal(resolved.code, 0, resolved.stderr);
      assert.equal(resolved.stdout, `finding ${item.id} resolved\n`);
      const bad = await cli('posture', 'list', '--severity', 'urgent');
      assert.notEqual(bad.code, 0);
      assert.match(bad.stderr, /--severity must be one of critical, high, medium, low/);
    } finally {
      work.cleanup();
    }
  });

  test('a finding about a device sits in the device’s fleet for fleet-scoped principals and subscribers', async () => {
    assert.equal((await api('POST', '/api/v1/fleets', { path: 'plant-a' })).status, 201);
    assert.equal((await api('POST', '/api/v1/fleets', { path: 'plant-b' })).status, 201);
    const inA = await enrollDevice(p, 'pa-1');
    await enrollDevice(p, 'pb-1');
    assert.equal((await api('POST', '/api/v1/devices/pa-1/move', { fleet: 'plant-a' })).status, 200);
    assert.equal((await api('POST', '/api/v1/devices/pb-1/move', { fleet: 'plant-b' })).status, 200);
    const scoped = await serviceToken('plant-a-officer', 'security-officer', 'plant-a');
    const sub = await api('POST', '/api/v1/webhooks', {
      serviceAccountId: scoped.id,
      url: `${base}/plant-a`,
      events: ['posture.*'],
    });
    assert.equal(sub.status, 201, JSON.stringify(sub.body));
    await p.app.services.posture.tamperReported('default', 'pb-1', Buffer.from('{"kind":"debug-port"}'));
    const c = await connectDevice(p, inA, { clientId: 'pa-1', protocolVersion: 5 });
    await c.publishAsync(topics.tamper('pa-1'), '{"kind":"debug-port"}', { qos: 1 });
    await c.endAsync();
    await waitFor(async () => {
      await drain();
      return events('/plant-a').length >= 1 ? true : undefined;
    });
    await drain();
    assert.deepEqual(
      events('/plant-a').map((e) => e.data.deviceId),
      ['pa-1'],
      'only the finding in its own fleet',
    );
    const [a] = await findings('kind=tamper&deviceId=pa-1');
    const [b] = await findings('kind=tamper&deviceId=pb-1');
    assert.equal(
      (await api('GET', `/api/v1/posture/findings/${a?.id}`, undefined, scoped.token)).status,
      200,
    );
    expectCode(
      await api('GET', `/api/v1/posture/findings/${b?.id}`, undefined, scoped.token),
      403,
      'ERR_POLICY_DENIED',
    );
  });
});
