// IAM building blocks without a platform: scrypt, TOTP (RFC 6238 vectors), base32, the password
// policy, the "covers" check behind the no-escalation rule, and permission boundaries.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  base32Decode,
  base32Encode,
  checkPasswordPolicy,
  hashPassword,
  totp,
  verifyPassword,
  verifyTotp,
} from '../src/modules/iam/index.ts';
import { hotp } from '../src/modules/iam/totp.ts';
import {
  coversPermissions,
  createPolicyService,
  globCovers,
  rolePolicies,
  selfServicePolicy,
  type Boundary,
  type PolicyDocument,
  type Principal,
} from '../src/modules/policy/index.ts';
import { isAppError } from '../src/kernel/index.ts';

describe('passwords', () => {
  test('default hashing is scrypt N=2^17, r=8, p=1, salted; verification is exact', async () => {
    const h = await hashPassword('a long pass phrase 1');
    assert.match(h, /^scrypt\$17\$8\$1\$[A-Za-z0-9_-]{22}\$[A-Za-z0-9_-]{43}$/);
    assert.equal(await verifyPassword('a long pass phrase 1', h), true);
    const fast = { logN: 10, r: 8, p: 1 };
    const h2 = await hashPassword('a long pass phrase 1', fast);
    assert.notEqual(h2, await hashPassword('a long pass phrase 1', fast), 'salted');
    assert.equal(await verifyPassword('a long pass phrase 2', h2), false);
  });

  test('malformed stored hashes never verify', async () => {
    const good = await hashPassword('x', { logN: 10, r: 8, p: 1 });
    const parts = good.split('$');
    for (const bad of [
      '',
      'plain',
      'bcrypt$10$8$1$a$b',
      `scrypt$9$8$1$${parts[4]}$${parts[5]}`, // too weak to accept
      `scrypt$21$8$1$${parts[4]}$${parts[5]}`, // too expensive (DoS)
      `scrypt$10$0$1$${parts[4]}$${parts[5]}`,
      `scrypt$10$8$1$${parts[4]}$AAAA`,
      `scrypt$10$8$1$AA$${parts[5]}`,
      `scrypt$10$8$1$${parts[4]}`,
    ])
      assert.equal(await verifyPassword('x', bad), false, bad);
  });

  test('policy: length, common passwords, the user name', () => {
    const refused = (pw: string, user = 'alice') => {
      try {
        checkPasswordPolicy(pw, user);
        return false;
      } catch (err) {
        return isAppError(err) && err.code === 'ERR_AUTH_PASSWORD_WEAK';
      }
    };
    for (const pw of [
      '',
      'short',
      '12345678901',
      'password1234',
      'Password1234',
      'aaaaaaaaaaaaaaa',
      'x'.repeat(257),
    ])
      assert.equal(refused(pw), true, pw);
    assert.equal(refused('hello-alice-2026!'), true, 'contains the user name');
    assert.equal(refused('correct horse battery'), false);
  });
});

describe('TOTP', () => {
  // RFC 6238 Appendix B, SHA-1 secret "12345678901234567890" (8 digits; we use the last 6).
  const secret = Buffer.from('12345678901234567890');
  const vectors: [number, string][] = [
    [59, '94287082'],
    [1111111109, '07081804'],
    [1111111111, '14050471'],
    [1234567890, '89005924'],
    [2000000000, '69279037'],
    [20000000000, '65353130'],
  ];
  test('RFC 6238 test vectors', () => {
    for (const [t, code] of vectors) {
      assert.equal(hotp(secret, Math.floor(t / 30), 8), code, String(t));
      assert.equal(totp(secret, t * 1000), code.slice(2), String(t));
    }
  });
  test('window of one step, replay refused, malformed codes refused', () => {
    const now = 1_700_000_000_000;
    const code = totp(secret, now);
    assert.ok(verifyTotp(secret, code, now + 30_000, null) !== undefined, 'one step late');
    assert.equal(verifyTotp(secret, code, now + 90_000, null), undefined, 'too late');
    const step = verifyTotp(secret, code, now, null);
    assert.ok(step !== undefined);
    assert.equal(verifyTotp(secret, code, now, step), undefined, 'replayed');
    for (const bad of ['', '12345', '1234567', 'abcdef', ' 12345', '12345\n', '１２３４５６'])
      assert.equal(verifyTotp(secret, bad, now, null), undefined, JSON.stringify(bad));
  });
  test('base32 round trip (RFC 4648 vectors)', () => {
    assert.equal(base32Encode(Buffer.from('foobar')), 'MZXW6YTBOI');
    assert.equal(base32Decode('MZXW6YTBOI').toString(), 'foobar');
    assert.equal(base32Decode('mzxw6ytboi======').toString(), 'foobar');
    assert.throws(() => base32Decode('MZ1!'));
  });
});

describe('no escalation: coversPermissions', () => {
  const user = (role: string, boundaries: Boundary[] = []): Principal => ({
    type: 'user',
    id: `u-${role}`,
    tenant: 't1',
    role,
    boundaries,
  });
  const docs = (role: string): PolicyDocument[] => [rolePolicies[role] as PolicyDocument, selfServicePolicy];
  const covers = (g: string, r: string, gb: Principal = user(g), rb: Principal = user(r)) =>
    coversPermissions({ principal: gb, documents: docs(g) }, { principal: rb, documents: docs(r) }).covered;

  test('glob inclusion', () => {
    const table: [string, string, boolean][] = [
      ['bulwark:t1:*', 'bulwark:t1:device/*', true],
      ['bulwark:t1:*', 'bulwark:t1:device/x', true],
      ['bulwark:t1:device/*', 'bulwark:t1:*', false],
      ['bulwark:t1:device/*', 'bulwark:t1:device/a*', true],
      ['bulwark:t1:device/a*', 'bulwark:t1:device/*', false],
      ['bulwark:t1:*', 'bulwark:t2:*', false],
      ['*', 'anything*', true],
      ['devices:*', 'devices:read', true],
      ['devices:*', '*', false],
      ['a*b', 'a*', false],
      ['bulwark:t1:x', 'bulwark:t1:x', true],
    ];
    for (const [outer, inner, want] of table)
      assert.equal(globCovers(outer, inner), want, `${outer} ⊇ ${inner}`);
  });

  test('the built-in roles form the expected order', () => {
    const roles = Object.keys(rolePolicies);
    const expected: Record<string, string[]> = {
      owner: roles,
      admin: roles,
      operator: ['operator', 'viewer'],
      'security-officer': ['security-officer', 'auditor', 'viewer'],
      auditor: ['auditor', 'viewer'],
      viewer: ['viewer'],
    };
    for (const g of roles)
      for (const r of roles)
        assert.equal(covers(g, r), expected[g]?.includes(r) ?? false, `${g} covers ${r}`);
  });

  test('boundaries narrow both sides', () => {
    const scoped = user('admin', [{ kind: 'token', actions: ['devices:*'] }]);
    assert.equal(covers('admin', 'viewer', scoped), false, 'a devices-only admin token cannot grant viewer');
    assert.equal(
      covers('admin', 'viewer', scoped, user('viewer', [{ kind: 'token', actions: ['devices:read'] }])),
      true,
    );
    const fleetAdmin = user('admin', [{ kind: 'role-scope', fleet: 'plant-a' }]);
    assert.equal(covers('admin', 'viewer', fleetAdmin), false, 'tenant-wide viewer is wider than plant-a');
    assert.equal(
      covers('admin', 'viewer', fleetAdmin, user('viewer', [{ kind: 'role-scope', fleet: 'plant-a/l1' }])),
      true,
    );
    assert.equal(
      covers('admin', 'viewer', fleetAdmin, user('viewer', [{ kind: 'role-scope', fleet: 'plant-ab' }])),
      false,
    );
  });

  test('conditional allows and overlapping denies are not held', () => {
    const mfaOnly: PolicyDocument = {
      id: 'mfa-admin',
      statements: [
        { effect: 'allow', actions: ['*'], resources: ['bulwark:t1:*'], conditions: { mfa: true } },
      ],
    };
    const denyCerts: PolicyDocument = {
      id: 'no-certs',
      statements: [
        { effect: 'allow', actions: ['*'], resources: ['bulwark:t1:*'] },
        { effect: 'deny', actions: ['certs:*'], resources: ['bulwark:t1:device/*'] },
      ],
    };
    const g = user('custom');
    const viewer = { principal: user('viewer'), documents: docs('viewer') };
    assert.equal(coversPermissions({ principal: g, documents: [mfaOnly] }, viewer).covered, false);
    assert.equal(coversPermissions({ principal: g, documents: [denyCerts] }, viewer).covered, false);
    const devicesOnly = {
      principal: user('x'),
      documents: [
        {
          id: 'd',
          statements: [{ effect: 'allow' as const, actions: ['devices:read'], resources: ['bulwark:t1:*'] }],
        },
      ],
    };
    assert.equal(coversPermissions({ principal: g, documents: [denyCerts] }, devicesOnly).covered, true);
  });

  test('the policy service decides with boundaries: role ∩ token scope', () => {
    const policy = createPolicyService();
    const owner: Principal = { type: 'user', id: 'o', tenant: 't1', role: 'owner' };
    const token: Principal = { ...owner, boundaries: [{ kind: 'token', actions: ['devices:read'] }] };
    assert.equal(policy.authorize(owner, 'devices:write', 'bulwark:t1:device/x').allowed, true);
    assert.equal(policy.authorize(token, 'devices:write', 'bulwark:t1:device/x').allowed, false);
    assert.equal(policy.authorize(token, 'devices:read', 'bulwark:t1:device/x').allowed, true);
    assert.equal(policy.authorize(token, 'devices:read', 'bulwark:t2:device/x').allowed, false);
    const viewerToken: Principal = {
      type: 'user',
      id: 'v',
      tenant: 't1',
      role: 'viewer',
      boundaries: [{ kind: 'token' }],
    };
    assert.equal(
      policy.authorize(viewerToken, 'devices:write', 'bulwark:t1:device/x').allowed,
      false,
      'a scope never adds',
    );
    const enrolling: Principal = {
      ...owner,
      boundaries: [{ kind: 'mfa-enrollment', selfOnly: true, actions: ['credentials:write'] }],
    };
    assert.equal(
      policy.authorize(enrolling, 'credentials:write', 'bulwark:t1:account/o/credentials').allowed,
      true,
    );
    assert.equal(
      policy.authorize(enrolling, 'credentials:write', 'bulwark:t1:account/other/credentials').allowed,
      false,
    );
    assert.equal(policy.authorize(enrolling, 'devices:read', 'bulwark:t1:device/x').allowed, false);
    // A boundary fleet with wildcards widens nothing.
    const wild: Principal = { ...owner, boundaries: [{ kind: 'role-scope', fleet: '*' }] };
    assert.equal(policy.authorize(wild, 'fleets:read', 'bulwark:t1:fleet/a').allowed, false);
  });
});
