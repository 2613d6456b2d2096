// bulwark token / service-account / user / role / webhook against a running platform, in process.
import 'reflect-metadata';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startPlatform, type Platform } from '../../../test/support/platform.ts';
import { tempDir } from '../../../test/support/db.ts';
import { runInProcess } from '../../../packages/cli/test/helpers/run-cli.ts';

describe('bulwark CLI: tokens, service accounts, users, roles, webhooks', () => {
  let p: Platform;
  let work: { path: string; cleanup(): void };
  let env: Record<string, string>;
  const cli = (...args: string[]) => runInProcess(args, { env, cwd: work.path });
  const json = async <T>(...args: string[]): Promise<T> => {
    const r = await cli(...args, '--json');
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout) as T;
  };

  before(async () => {
    p = await startPlatform({ iam: { scrypt: { logN: 10, r: 8, p: 1 } } });
    work = tempDir('bulwark-iam-cli-');
    env = {
      HOME: work.path,
      BULWARK_CONFIG_DIR: join(work.path, 'config'),
      BULWARK_URL: p.url,
      BULWARK_TOKEN: p.token,
      BULWARK_CA_FILE: p.app.paths.caFile,
    };
  });
  after(async () => {
    await p.close();
    work.cleanup();
  });

  test('token create prints the secret alone on stdout; list and revoke', async () => {
    const r = await cli(
      'token',
      'create',
      'ci',
      '--expires-days',
      '7',
      '--actions',
      'devices:read,tokens:read',
    );
    assert.equal(r.code, 0, r.stderr);
    const secret = r.stdout.trim();
    assert.match(secret, /^bwk_[A-Za-z0-9_-]{43}$/);
    assert.match(r.stderr, /shown once/);
    const who = await runInProcess(['whoami', '--json'], {
      env: { ...env, BULWARK_TOKEN: secret },
      cwd: work.path,
    });
    assert.equal(who.code, 0, who.stderr);
    const list = await json<{ items: { id: string; name: string; status: string }[] }>('token', 'list');
    const ci = list.items.find((t) => t.name === 'ci');
    assert.ok(ci);
    assert.equal((await cli('token', 'list')).stdout.includes('devices:read,tokens:read'), true);
    assert.equal((await cli('token', 'revoke', ci.id)).code, 0);
    const after = await runInProcess(['whoami'], { env: { ...env, BULWARK_TOKEN: secret }, cwd: work.path });
    assert.notEqual(after.code, 0);
    assert.match(after.stderr, /ERR_AUTH_INVALID_TOKEN|Invalid token/);
  });

  test('service accounts and their tokens; escalation refused with its code', async () => {
    const sa = await json<{ id: string; role: string }>(
      'service-account',
      'create',
      'bridge',
      '--role',
      'viewer',
    );
    assert.equal(sa.role, 'viewer');
    const t = await json<{ secret: string }>('token', 'create', 'bridge-key', '--account', sa.id);
    const viewerEnv = { ...env, BULWARK_TOKEN: t.secret };
    const refused = await runInProcess(['service-account', 'create', 'evil', '--role', 'admin'], {
      env: viewerEnv,
      cwd: work.path,
    });
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /ERR_POLICY_DENIED|Not allowed/);
    const list = await json<{ items: { name: string }[] }>('service-account', 'list');
    assert.ok(list.items.some((a) => a.name === 'bridge'));
    assert.equal((await cli('service-account', 'delete', sa.id)).code, 0);
  });

  test('users: create prints a setup token; set-role; list', async () => {
    const r = await cli('user', 'create', 'alice', '--role', 'operator');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout.trim(), /^bwp_/);
    const users = await json<{ items: { id: string; name: string; role: string }[] }>('user', 'list');
    const alice = users.items.find((u) => u.name === 'alice');
    assert.ok(alice);
    const changed = await json<{ role: string }>('user', 'set-role', alice.id, '--role', 'auditor');
    assert.equal(changed.role, 'auditor');
    const missing = await cli('user', 'set-role', alice.id);
    assert.equal(missing.code, 2, 'usage error');
  });

  test('roles: list and create from a file', async () => {
    const file = join(work.path, 'reader.json');
    writeFileSync(
      file,
      JSON.stringify([{ effect: 'allow', actions: ['devices:read'], resources: ['bulwark:default:*'] }]),
    );
    const created = await json<{ name: string }>('role', 'create', 'reader', '--file', file);
    assert.equal(created.name, 'reader');
    const out = (await cli('role', 'list')).stdout;
    for (const r of ['owner', 'security-officer', 'reader']) assert.ok(out.includes(r), r);
  });

  test('roles: update from a file (versioned), history, stale version and built-in refused', async () => {
    const file = join(work.path, 'editor.json');
    const statements = (...actions: string[]) => [
      { effect: 'allow', actions, resources: ['bulwark:default:*'] },
    ];
    writeFileSync(file, JSON.stringify(statements('devices:read')));
    await json('role', 'create', 'line-editor', '--file', file);
    writeFileSync(file, JSON.stringify({ statements: statements('devices:read', 'fleets:read') }));
    const r = await cli('role', 'update', 'line-editor', '--file', file, '--expected-version', '1');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /updated role line-editor to version 2 \(1 statements\)/);
    const history = await cli('role', 'versions', 'line-editor');
    assert.equal(history.code, 0, history.stderr);
    assert.match(history.stdout, /^2 .*devices:read,fleets:read$/m);
    assert.match(history.stdout, /^1 .*devices:read$/m);
    const stale = await cli('role', 'update', 'line-editor', '--file', file, '--expected-version', '1');
    assert.notEqual(stale.code, 0);
    assert.match(stale.stderr, /ERR_IAM_ROLE_CONFLICT/);
    const builtin = await cli('role', 'update', 'viewer', '--file', file);
    assert.notEqual(builtin.code, 0);
    assert.match(builtin.stderr, /ERR_IAM_ROLE_INVALID/);
    const usage = await cli('role', 'update', 'line-editor');
    assert.notEqual(usage.code, 0);
    assert.match(usage.stderr, /missing --file/);
  });

  test('webhooks: create prints the signing secret; list; deliveries', async () => {
    const sa = await json<{ id: string }>('service-account', 'create', 'hooks', '--role', 'viewer');
    const r = await cli(
      'webhook',
      'create',
      '--service-account',
      sa.id,
      '--endpoint',
      'https://hooks.example.com/bulwark',
      '--events',
      'device.*,certificate.*',
    );
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout.trim(), /^whsec_/);
    const list = await json<{ items: { id: string; url: string }[] }>('webhook', 'list');
    const hook = list.items.find((w) => w.url === 'https://hooks.example.com/bulwark');
    assert.ok(hook);
    const d = await json<{ items: unknown[] }>('webhook', 'deliveries', hook.id);
    assert.deepEqual(d.items, []);
    const bad = await cli(
      'webhook',
      'create',
      '--service-account',
      sa.id,
      '--endpoint',
      'http://example.com',
      '--events',
      'device.*',
    );
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /ERR_WEBHOOK_URL|not allowed/);
  });
});
