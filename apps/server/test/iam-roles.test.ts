// Custom roles change after creation: versioned and audited, only with permissions the caller holds
// (before and after), never a role the caller holds itself, never a built-in role; holders get the new
// permissions on their next request, on every node. The role store runs on SQLite and PostgreSQL.
import 'reflect-metadata';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createIamStore } from '../src/modules/iam/index.ts';
import { migrate } from '../src/infra/database/migrate.ts';
import { backends, dropSchema, pgUrl } from '../../../test/support/db.ts';
import { startPlatform, type Platform } from '../../../test/support/platform.ts';
import { call, type Reply } from './support/iam-http.ts';

interface Role {
  name: string;
  builtin: boolean;
  description: string | null;
  statements: { actions: string[] }[];
  version?: number;
  updatedAt?: string | null;
}
interface Problem {
  code: string;
  errors?: { path: string; message: string }[];
}

const allow = (...actions: string[]) => [{ effect: 'allow', actions, resources: ['bulwark:default:*'] }];

describe('custom roles after creation', () => {
  let p: Platform;
  const api = <T = unknown>(method: string, path: string, body?: unknown, token = p.token) =>
    call<T>(p.url, p.ca, method, path, { token, ...(body !== undefined ? { body } : {}) });
  const expectCode = (r: Reply, status: number, code: string) => {
    assert.equal(r.status, status, JSON.stringify(r.body));
    assert.equal((r.body as Problem).code, code);
  };
  const serviceToken = async (name: string, role: string) => {
    const sa = await api<{ id: string }>('POST', '/api/v1/service-accounts', { name, role });
    assert.equal(sa.status, 201, JSON.stringify(sa.body));
    const t = await api<{ secret: string }>('POST', `/api/v1/accounts/${sa.body.id}/tokens`, { name: 't' });
    assert.equal(t.status, 201, JSON.stringify(t.body));
    return t.body.secret;
  };
  const createRole = async (name: string, statements: unknown, token = p.token) => {
    const r = await api<Role>('POST', '/api/v1/roles', { name, statements }, token);
    assert.equal(r.status, 201, JSON.stringify(r.body));
    return r.body;
  };

  before(async () => {
    p = await startPlatform({ iam: { scrypt: { logN: 10, r: 8, p: 1 } } });
  });
  after(async () => {
    await p.close();
  });

  test('an update is a new version: listed, kept in the history, audited with before and after', async () => {
    const created = await createRole('line-reader', allow('devices:read'));
    assert.equal(created.version, 1);
    const updated = await api<Role>('PUT', '/api/v1/roles/line-reader', {
      description: 'reads devices and fleets',
      statements: allow('devices:read', 'fleets:read'),
      expectedVersion: 1,
    });
    assert.equal(updated.status, 200, JSON.stringify(updated.body));
    assert.equal(updated.body.version, 2);
    assert.equal(updated.body.description, 'reads devices and fleets');
    assert.ok(updated.body.updatedAt);
    // A change without a description keeps it.
    const kept = await api<Role>('PUT', '/api/v1/roles/line-reader', {
      statements: allow('devices:read', 'fleets:read', 'groups:read'),
    });
    assert.equal(kept.body.version, 3);
    assert.equal(kept.body.description, 'reads devices and fleets');
    const listed = await api<{ items: Role[] }>('GET', '/api/v1/roles');
    const role = listed.body.items.find((r) => r.name === 'line-reader');
    assert.equal(role?.version, 3);
    const history = await api<{ items: { version: number; statements: { actions: string[] }[] }[] }>(
      'GET',
      '/api/v1/roles/line-reader/versions',
    );
    assert.deepEqual(
      history.body.items.map((v) => [v.version, v.statements[0]?.actions.length]),
      [
        [3, 3],
        [2, 2],
        [1, 1],
      ],
    );
    await p.app.services.audit.flush();
    const audit = await api<{ items: { action: string; details: Record<string, unknown> }[] }>(
      'GET',
      '/api/v1/audit?action=role.update',
    );
    const entry = audit.body.items.find((e) => e.details.version === 2);
    assert.ok(entry, JSON.stringify(audit.body));
    assert.deepEqual((entry.details.from as { version: number }).version, 1);
  });

  test('holders get the new permissions on their next request, gained and lost', async () => {
    await createRole('floor-reader', allow('devices:read'));
    const holder = await serviceToken('floor-bot', 'floor-reader');
    expectCode(await api('GET', '/api/v1/fleets', undefined, holder), 403, 'ERR_POLICY_DENIED');
    assert.equal((await api('GET', '/api/v1/devices', undefined, holder)).status, 200);
    const r = await api('PUT', '/api/v1/roles/floor-reader', { statements: allow('fleets:read') });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal((await api('GET', '/api/v1/fleets', undefined, holder)).status, 200, 'gained at once');
    expectCode(await api('GET', '/api/v1/devices', undefined, holder), 403, 'ERR_POLICY_DENIED');
  });

  test('only with permissions the caller holds, both those the role grants now and after', async () => {
    await createRole('role-editor', allow('roles:read', 'roles:write', 'devices:read', 'telemetry:read'));
    const editor = await serviceToken('editor-bot', 'role-editor');
    await createRole('sensor-reader', allow('devices:read'));
    // Adding an action the editor lacks: refused, and what is missing is named.
    const raised = await api<Problem>(
      'PUT',
      '/api/v1/roles/sensor-reader',
      { statements: allow('devices:read', 'devices:write') },
      editor,
    );
    expectCode(raised, 403, 'ERR_IAM_ESCALATION');
    assert.ok(
      raised.body.errors?.some((e) => e.path === 'devices:write'),
      JSON.stringify(raised.body),
    );
    // Within what the editor holds: fine.
    const ok = await api<Role>(
      'PUT',
      '/api/v1/roles/sensor-reader',
      { statements: allow('devices:read', 'telemetry:read') },
      editor,
    );
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    // A role granting what the editor lacks cannot be rewritten by it, not even narrowed.
    await createRole('cert-reader', allow('certs:read'));
    expectCode(
      await api('PUT', '/api/v1/roles/cert-reader', { statements: allow('devices:read') }, editor),
      403,
      'ERR_IAM_ESCALATION',
    );
    const untouched = await api<{ items: Role[] }>('GET', '/api/v1/roles');
    assert.deepEqual(untouched.body.items.find((r) => r.name === 'cert-reader')?.statements[0]?.actions, [
      'certs:read',
    ]);
  });

  test('the role a caller holds cannot be used to raise its own rights (nor changed by it at all)', async () => {
    await createRole('self-editor', allow('roles:read', 'roles:write', 'devices:read'));
    const self = await serviceToken('self-bot', 'self-editor');
    expectCode(await api('GET', '/api/v1/fleets', undefined, self), 403, 'ERR_POLICY_DENIED');
    expectCode(
      await api(
        'PUT',
        '/api/v1/roles/self-editor',
        { statements: allow('roles:read', 'roles:write', 'devices:read', 'fleets:read') },
        self,
      ),
      403,
      'ERR_IAM_SELF_CHANGE',
    );
    expectCode(
      await api('PUT', '/api/v1/roles/self-editor', { statements: allow('*') }, self),
      403,
      'ERR_IAM_SELF_CHANGE',
    );
    expectCode(await api('GET', '/api/v1/fleets', undefined, self), 403, 'ERR_POLICY_DENIED');
    const history = await api<{ items: unknown[] }>('GET', '/api/v1/roles/self-editor/versions');
    assert.equal(history.body.items.length, 1);
  });

  test('built-in roles are immutable; unknown roles, bad statements and stale versions are refused', async () => {
    for (const name of ['admin', 'viewer', 'owner']) {
      expectCode(
        await api('PUT', `/api/v1/roles/${name}`, { statements: allow('devices:read') }),
        400,
        'ERR_IAM_ROLE_INVALID',
      );
    }
    expectCode(
      await api('PUT', '/api/v1/roles/no-such-role', { statements: allow('devices:read') }),
      404,
      'ERR_IAM_ROLE_NOT_FOUND',
    );
    await createRole('stale', allow('devices:read'));
    expectCode(
      await api('PUT', '/api/v1/roles/stale', { statements: [{ effect: 'allow', actions: ['nope:x'] }] }),
      400,
      'ERR_IAM_ROLE_INVALID',
    );
    expectCode(
      await api('PUT', '/api/v1/roles/stale', {
        statements: [{ effect: 'allow', actions: ['devices:read'], resources: ['bulwark:acme:*'] }],
      }),
      400,
      'ERR_IAM_ROLE_INVALID',
    );
    assert.equal(
      (await api('PUT', '/api/v1/roles/stale', { statements: allow('fleets:read'), expectedVersion: 1 }))
        .status,
      200,
    );
    expectCode(
      await api('PUT', '/api/v1/roles/stale', { statements: allow('groups:read'), expectedVersion: 1 }),
      409,
      'ERR_IAM_ROLE_CONFLICT',
    );
  });

  test('a deletion is a version; a role created again under the name continues the numbering', async () => {
    await createRole('short-lived', allow('devices:read'));
    assert.equal((await api('DELETE', '/api/v1/roles/short-lived')).status, 204);
    expectCode(
      await api('PUT', '/api/v1/roles/short-lived', { statements: allow('devices:read') }),
      404,
      'ERR_IAM_ROLE_NOT_FOUND',
    );
    const again = await createRole('short-lived', allow('fleets:read'));
    assert.equal(again.version, 3);
    const history = await api<{ items: { version: number; deleted: boolean }[] }>(
      'GET',
      '/api/v1/roles/short-lived/versions',
    );
    assert.deepEqual(
      history.body.items.map((v) => [v.version, v.deleted]),
      [
        [3, false],
        [2, true],
        [1, false],
      ],
    );
    expectCode(await api('GET', '/api/v1/roles/never-was/versions'), 404, 'ERR_IAM_ROLE_NOT_FOUND');
  });
});

for (const b of backends) {
  describe(`role store: ${b.name}`, { skip: b.skip }, () => {
    test('insert, compare-and-set update, delete, versions', async () => {
      const opened = await b.open();
      try {
        await migrate(opened.db);
        const store = createIamStore(opened.db);
        const r = await store.insertRole({
          tenant: 't',
          name: 'r',
          description: null,
          statements: [{ a: 1 }],
          createdAt: 1,
          createdBy: 'x',
        });
        assert.equal(r.version, 1);
        const u = await store.updateRole('t', 'r', 1, {
          description: 'd',
          statements: [{ a: 2 }],
          at: 2,
          by: 'y',
        });
        assert.deepEqual([u?.version, u?.description, u?.updatedAt, u?.updatedBy], [2, 'd', 2, 'y']);
        // Built on a version that is gone: nothing happens.
        assert.equal(
          await store.updateRole('t', 'r', 1, { description: null, statements: [], at: 3, by: 'z' }),
          undefined,
        );
        assert.equal(await store.deleteRole('t', 'r', 4, 'y'), true);
        assert.equal(await store.deleteRole('t', 'r', 4, 'y'), false);
        const again = await store.insertRole({
          tenant: 't',
          name: 'r',
          description: null,
          statements: [],
          createdAt: 5,
          createdBy: 'x',
        });
        assert.equal(again.version, 4);
        const versions = await store.listRoleVersions('t', 'r');
        assert.deepEqual(
          versions.map((v) => [v.version, v.deleted, v.createdBy]),
          [
            [4, false, 'x'],
            [3, true, 'y'],
            [2, false, 'y'],
            [1, false, 'x'],
          ],
        );
        assert.deepEqual(await store.listRoleVersions('other', 'r'), []);
      } finally {
        await opened.cleanup();
      }
    });
  });
}

describe(
  'a role change on one node reaches holders on another',
  { skip: pgUrl ? false : 'PostgreSQL not reachable' },
  () => {
    const schema = `t_${randomBytes(6).toString('hex')}`;
    let a: Platform;
    let b: Platform;
    before(async () => {
      const opts = {
        postgres: true,
        sharedSchema: schema,
        env: { BULWARK_MASTER_KEY: randomBytes(32).toString('base64') },
        iam: { scrypt: { logN: 10, r: 8, p: 1 } },
      };
      a = await startPlatform(opts);
      b = await startPlatform(opts);
    });
    after(async () => {
      await b?.close();
      await a?.close();
      if (pgUrl) await dropSchema(pgUrl, schema);
    });

    test('within a second, not the 5 s poll', async () => {
      const api = <T>(p: Platform, method: string, path: string, body?: unknown, token = a.token) =>
        call<T>(p.url, p.ca, method, path, { token, ...(body !== undefined ? { body } : {}) });
      assert.equal(
        (await api(a, 'POST', '/api/v1/roles', { name: 'x-reader', statements: allow('devices:read') }))
          .status,
        201,
      );
      const sa = await api<{ id: string }>(a, 'POST', '/api/v1/service-accounts', {
        name: 'x',
        role: 'x-reader',
      });
      const t = await api<{ secret: string }>(a, 'POST', `/api/v1/accounts/${sa.body.id}/tokens`, {
        name: 't',
      });
      const holder = t.body.secret;
      // Node b learned of the role (its first refresh) before it serves the holder.
      let until = Date.now() + 6000;
      while ((await api(b, 'GET', '/api/v1/devices', undefined, holder)).status !== 200 && Date.now() < until)
        await new Promise((r) => setTimeout(r, 50));
      assert.equal((await api(b, 'GET', '/api/v1/fleets', undefined, holder)).status, 403);
      const changed = await api(a, 'PUT', '/api/v1/roles/x-reader', { statements: allow('fleets:read') });
      assert.equal(changed.status, 200, JSON.stringify(changed.body));
      until = Date.now() + 1000;
      const fleetsOnB = async () => (await api(b, 'GET', '/api/v1/fleets', undefined, holder)).status;
      while ((await fleetsOnB()) !== 200 && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
      assert.equal(await fleetsOnB(), 200, 'not within a second on the other node');
    });
  },
);
