// Route × role × tenant matrix. Every operation of the OpenAPI document is called as each built-in role
// and as the owner of another tenant. What each role may do is derived from the role definitions
// (builtin.ts), not listed per route, so a route added tomorrow is covered the day it is added.
// The companion test removes one permission check and shows the matrix catches it.
import 'reflect-metadata';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { rolePolicies, selfServicePolicy, type PolicyDocument } from '../src/modules/policy/index.ts';
import { enrollDevice, startPlatform, type Platform } from '../../../test/support/platform.ts';
import { call, type Reply } from './support/iam-http.ts';

interface Operation {
  'x-bulwark-action'?: string;
  security?: unknown[];
  parameters?: { in: string; name: string }[];
  requestBody?: { content: Record<string, { schema: JsonSchema }> };
}
interface JsonSchema {
  type?: string | string[];
  properties?: Record<string, JsonSchema>;
  required?: string[];
  examples?: unknown[];
  minLength?: number;
  minimum?: number;
  enum?: unknown[];
  anyOf?: JsonSchema[];
}

/**
 * Public on purpose: signing in, choosing a password with a one-time token, and the two calls of a
 * command-line single sign-on (start one bound to a PKCE challenge; exchange its one-time code).
 */
const PUBLIC = new Set([
  'POST /api/v1/auth/login',
  'POST /api/v1/auth/password',
  'POST /api/v1/auth/cli/start',
  'POST /api/v1/auth/cli/token',
]);
/** Operations that only ever concern the caller's own account. */
const SELF_PATHS = /^\/api\/v1\/(whoami|auth\/session|auth\/logout|me\/)/;

const globMatch = (pattern: string, value: string) =>
  new RegExp(
    `^${pattern
      .split('*')
      .map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
      .join('.*')}$`,
  ).test(value);

/**
 * Expected from the role's definition alone: an allow statement naming the action on the whole tenant
 * (`bulwark:${principal.tenant}:*`), or for the caller's own account, the self-service statement.
 */
export function roleAllows(role: string, action: string, path: string): boolean {
  const doc = rolePolicies[role] as PolicyDocument;
  const tenantWide = doc.statements.some(
    (s) =>
      s.effect === 'allow' &&
      !s.conditions &&
      s.actions.some((a) => globMatch(a, action)) &&
      (s.resources ?? []).includes('bulwark:${principal.tenant}:*'),
  );
  const self =
    SELF_PATHS.test(path) &&
    selfServicePolicy.statements.some((s) => s.actions.some((a) => globMatch(a, action)));
  return tenantWide || self;
}

/** A minimal body from the schema: examples where given, else the simplest value of the type. */
function sample(schema: JsonSchema | undefined): unknown {
  if (!schema) return {};
  if (schema.examples?.length) return schema.examples[0];
  if (schema.enum?.length) return schema.enum[0];
  if (schema.anyOf?.[0]) return sample(schema.anyOf[0]);
  const type = Array.isArray(schema.type) ? schema.type[0] : schema.type;
  switch (type) {
    case 'object': {
      const out: Record<string, unknown> = {};
      for (const k of schema.required ?? []) out[k] = sample(schema.properties?.[k]);
      return out;
    }
    case 'array':
      return [];
    case 'integer':
    case 'number':
      return schema.minimum ?? 1;
    case 'boolean':
      return false;
    default:
      return 'x'.repeat(Math.max(1, schema.minLength ?? 1));
  }
}

interface Fixtures {
  /** Values of tenant A no request of the matrix ever carries: finding one in an answer is a leak. */
  markers: string[];
  deviceId: string;
  serial: string;
  userId: string;
  serviceAccountId: string;
  doomedServiceAccountId: string;
  tokenId: string;
  roleName: string;
}

function fill(path: string, f: Fixtures): string {
  const section = path.split('/')[3] ?? '';
  return path.replace(/\{(\w+)\}/g, (_m, name: string) => {
    if (name === 'accountId') return f.serviceAccountId;
    if (name === 'tokenId') return f.tokenId;
    if (name === 'serial') return f.serial;
    if (name === 'name' && section === 'roles') return f.roleName;
    if (name === 'id') {
      if (section === 'devices') return f.deviceId;
      if (section === 'users') return f.userId;
      if (section === 'service-accounts') return f.doomedServiceAccountId;
    }
    return 'fx';
  });
}

export interface Mismatch {
  op: string;
  who: string;
  expected: string;
  got: string;
}

/** Runs the whole matrix; returns every cell that disagrees with the role definitions. */
export async function runMatrix(
  p: Platform,
  callers: { role: string; token: string }[],
  foreign: { token: string },
  f: Fixtures,
  /** Problems found in tenant A after the foreign owner's pass (empty: nothing changed). */
  intactCheck: () => Promise<string[]>,
): Promise<{ mismatches: Mismatch[]; cells: number }> {
  const doc = await call<{ paths: Record<string, Record<string, Operation>> }>(
    p.url,
    p.ca,
    'GET',
    '/api/v1/openapi.json',
  );
  const mismatches: Mismatch[] = [];
  let cells = 0;
  const AUTHN_FAILURES = new Set(['ERR_AUTH_MISSING', 'ERR_AUTH_INVALID_TOKEN', 'ERR_AUTH_SESSION_INVALID']);
  const operations: {
    name: string;
    template: string;
    method: string;
    action: string;
    path: string;
    body: unknown;
  }[] = [];
  for (const [template, ops] of Object.entries(doc.body.paths)) {
    for (const [m, op] of Object.entries(ops)) {
      const method = m.toUpperCase();
      const name = `${method} ${template}`;
      const action = op['x-bulwark-action'];
      if (!action) {
        if (!PUBLIC.has(name)) mismatches.push({ op: name, who: '-', expected: 'an action', got: 'public' });
        continue;
      }
      const body = op.requestBody ? sample(Object.values(op.requestBody.content)[0]?.schema) : undefined;
      operations.push({ name, template, method, action, path: fill(template, f), body });
    }
  }
  const send = (o: (typeof operations)[number], token: string) =>
    call<{ code?: string }>(p.url, p.ca, o.method, o.path, {
      token,
      ...(o.body !== undefined ? { body: o.body } : {}),
    });

  // Another tenant's owner holds everything in its own tenant and nothing in ours: whatever ids of ours
  // it names, it must neither see nor change anything of tenant A.
  for (const o of operations) {
    cells++;
    const r: Reply<{ code?: string }> = await send(o, foreign.token);
    const text = JSON.stringify(r.body ?? '');
    const leaked = f.markers.filter((m) => text.includes(m));
    if ((r.status === 401 && AUTHN_FAILURES.has(r.body?.code ?? '')) || leaked.length > 0)
      mismatches.push({
        op: o.name,
        who: 'foreign-owner',
        expected: 'nothing of tenant A',
        got: `${r.status} ${leaked.join(',')}`,
      });
  }
  const intact = await intactCheck();
  if (intact.length > 0)
    mismatches.push({
      op: '*',
      who: 'foreign-owner',
      expected: 'tenant A unchanged',
      got: intact.join('; '),
    });

  for (const o of operations) {
    for (const c of callers) {
      cells++;
      const r = await send(o, c.token);
      const denied = r.status === 403 && r.body?.code === 'ERR_POLICY_DENIED';
      const unauthenticated = r.status === 401 && AUTHN_FAILURES.has(r.body?.code ?? '');
      const want = roleAllows(c.role, o.action, o.template);
      if (unauthenticated || denied === want)
        mismatches.push({
          op: o.name,
          who: c.role,
          expected: want ? 'allowed' : 'denied',
          got: `${r.status} ${r.body?.code ?? ''}`,
        });
    }
  }
  return { mismatches, cells };
}

describe('authorization matrix: every route × every role × a foreign tenant', () => {
  let p: Platform;
  let f: Fixtures;
  const callers: { role: string; token: string }[] = [];
  let foreign: { token: string };

  const api = <T>(method: string, path: string, body?: unknown) =>
    call<T>(p.url, p.ca, method, path, { token: p.token, ...(body !== undefined ? { body } : {}) });

  before(async () => {
    p = await startPlatform({ iam: { scrypt: { logN: 10, r: 8, p: 1 } } });
    for (const role of Object.keys(rolePolicies)) {
      const sa = await api<{ id: string }>('POST', '/api/v1/service-accounts', {
        name: `matrix-${role}`,
        role,
      });
      const t = await api<{ secret: string }>('POST', `/api/v1/accounts/${sa.body.id}/tokens`, {
        name: 'matrix',
      });
      assert.equal(t.status, 201, JSON.stringify(t.body));
      callers.push({ role, token: t.body.secret });
    }
    const iam = p.app.services.iam;
    await iam.ensureTenant('acme');
    const acme = await iam.bootstrapOwner('acme');
    assert.ok(acme);
    foreign = { token: acme.token };
  });
  after(async () => {
    await p.close();
  });

  const fixtures = async (tag: string): Promise<Fixtures> => {
    const marker = `marker-${tag}-${Math.random().toString(36).slice(2, 10)}`;
    const dev = await enrollDevice(p, `fx-device-${tag}`);
    const patched = await api('PATCH', `/api/v1/devices/${dev.id}`, { attributes: { owner: marker } });
    assert.equal(patched.status, 200, JSON.stringify(patched.body));
    const user = await api<{ account: { id: string } }>('POST', '/api/v1/users', {
      name: `fx-user-${tag}`,
      role: 'viewer',
    });
    const sa = await api<{ id: string }>('POST', '/api/v1/service-accounts', {
      name: `fx-sa-${tag}`,
      role: 'viewer',
    });
    const doomed = await api<{ id: string }>('POST', '/api/v1/service-accounts', {
      name: `fx-doomed-${tag}`,
      role: 'viewer',
    });
    const token = await api<{ token: { id: string } }>('POST', `/api/v1/accounts/${sa.body.id}/tokens`, {
      name: 'fx',
    });
    const role = await api('POST', '/api/v1/roles', {
      name: `fx-role-${tag}`,
      statements: [{ effect: 'allow', actions: ['devices:read'], resources: ['bulwark:default:*'] }],
    });
    assert.equal(role.status, 201);
    const fingerprint = (
      await api<{ items: { fingerprint256: string }[] }>('GET', `/api/v1/devices/${dev.id}/certificates`)
    ).body.items[0]?.fingerprint256;
    assert.ok(fingerprint);
    return {
      markers: [marker, `fx-user-${tag}`, `fx-sa-${tag}`, `fx-doomed-${tag}`, fingerprint],
      deviceId: dev.id,
      serial: dev.serial,
      userId: user.body.account.id,
      serviceAccountId: sa.body.id,
      doomedServiceAccountId: doomed.body.id,
      tokenId: token.body.token.id,
      roleName: `fx-role-${tag}`,
    };
  };

  /** Everything of tenant A the foreign pass could have changed, read back as A's owner. */
  const intactCheck = (fx: Fixtures) => async () => {
    const problems: string[] = [];
    const dev = await api<{ status: string; certificates: { status: string }[] }>(
      'GET',
      `/api/v1/devices/${fx.deviceId}`,
    );
    if (dev.status !== 200 || dev.body.status !== 'active') problems.push('device changed');
    if (dev.body.certificates?.some((c) => c.status !== 'active')) problems.push('certificate revoked');
    const user = await api<{ status: string; role: string }>('GET', `/api/v1/users/${fx.userId}`);
    if (user.body.status !== 'active' || user.body.role !== 'viewer') problems.push('user changed');
    const tokens = await api<{ items: { id: string; status: string }[] }>(
      'GET',
      `/api/v1/accounts/${fx.serviceAccountId}/tokens`,
    );
    if (!tokens.body.items.some((t) => t.id === fx.tokenId && t.status === 'active'))
      problems.push('token revoked');
    const sas = await api<{ items: { id: string }[] }>('GET', '/api/v1/service-accounts');
    if (!sas.body.items.some((a) => a.id === fx.doomedServiceAccountId))
      problems.push('service account deleted');
    const roles = await api<{ items: { name: string; version?: number }[] }>('GET', '/api/v1/roles');
    const role = roles.body.items.find((r) => r.name === fx.roleName);
    if (!role) problems.push('role deleted');
    else if (role.version !== 1) problems.push('role changed');
    return problems;
  };

  test('every cell agrees with the role definitions; the foreign owner reaches nothing of ours', async () => {
    f = await fixtures('a');
    const { mismatches, cells } = await runMatrix(p, callers, foreign, f, intactCheck(f));
    assert.ok(cells > 300, `only ${cells} cells`);
    assert.deepEqual(mismatches, []);
  });

  test('removing one permission check makes the matrix fail', async () => {
    const fx = await fixtures('b');
    const policy = p.app.services.policy;
    const authorize = policy.authorize.bind(policy);
    // "Forget" the check of devices:write: every principal passes it.
    policy.authorize = (principal, action, resource, context) =>
      action === 'devices:write'
        ? { allowed: true, matched: [] }
        : authorize(principal, action, resource, context);
    try {
      const { mismatches } = await runMatrix(p, callers, foreign, fx, intactCheck(fx));
      const ops = new Set(mismatches.map((m) => `${m.who} ${m.op}`));
      assert.ok(ops.has('viewer POST /api/v1/devices'), JSON.stringify([...ops].slice(0, 10)));
      assert.ok(ops.has('auditor DELETE /api/v1/devices/{id}'));
      assert.ok(mismatches.every((m) => m.expected === 'denied'));
    } finally {
      policy.authorize = authorize;
    }
  });
});
