// The bulwark CLI's fleet, group and policy commands, run as a child process against a real platform.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { enrollDevice, startPlatform, type Platform } from '../../../test/support/platform.ts';
import { tempDir } from '../../../test/support/db.ts';

const BIN = fileURLToPath(new URL('../../../packages/cli/bin/bulwark.js', import.meta.url));

let p: Platform;
let work: { path: string; cleanup(): void };
let env: NodeJS.ProcessEnv;

function bulwark(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { env, cwd: work.path });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

before(async () => {
  p = await startPlatform();
  work = tempDir('bulwark-policy-cli-');
  env = {
    PATH: process.env.PATH,
    HOME: work.path,
    BULWARK_CONFIG_DIR: join(work.path, 'config'),
    BULWARK_URL: p.url,
    BULWARK_TOKEN: p.token,
    BULWARK_CA_FILE: p.app.paths.caFile,
  };
  await enrollDevice(p, 'robot-1');
});
after(async () => {
  await p.close();
  work.cleanup();
});

describe('bulwark fleet / group / policy', () => {
  test('fleets: create nested, move a device, list a subtree, refuse bad paths', async () => {
    assert.equal((await bulwark('fleet', 'create', 'plant-a')).code, 0);
    const nested = await bulwark('fleet', 'create', 'plant-a/line-3', '--description', 'Line 3');
    assert.equal(nested.code, 0, nested.stderr);
    const orphan = await bulwark('fleet', 'create', 'plant-z/line-1');
    assert.equal(orphan.code, 1);
    assert.match(orphan.stderr, /ERR_FLEET_PARENT_NOT_FOUND/);
    assert.equal((await bulwark('fleet', 'move', 'robot-1', 'plant-a/line-3')).code, 0);
    const show = await bulwark('fleet', 'show', 'plant-a/line-3');
    assert.match(show.stdout, /^devices\s+1$/m);
    const list = await bulwark('fleet', 'list', '--under', 'plant-a', '--json');
    assert.deepEqual(
      (JSON.parse(list.stdout) as { items: { path: string }[] }).items.map((f) => f.path),
      ['plant-a', 'plant-a/line-3'],
    );
    const bad = await bulwark('fleet', 'create', 'Plant A');
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /ERR_FLEET_INVALID_PATH/);
  });

  test('groups: dynamic with a query, quarantine by hand', async () => {
    const dyn = await bulwark('group', 'create', 'in-plant-a', '--query', 'fleet under plant-a');
    assert.equal(dyn.code, 0, dyn.stderr);
    assert.match(dyn.stdout, /created dynamic group in-plant-a \(1 members\)/);
    const badQuery = await bulwark('group', 'create', 'x', '--query', 'attr.hw ==');
    assert.equal(badQuery.code, 1);
    assert.match(badQuery.stderr, /ERR_GROUP_QUERY_INVALID/);
    assert.equal((await bulwark('group', 'add', 'quarantine', '--device', 'robot-1')).code, 0);
    const members = await bulwark('group', 'members', 'quarantine', '--json');
    assert.deepEqual((JSON.parse(members.stdout) as { items: string[] }).items, ['robot-1']);
    const list = await bulwark('group', 'list');
    assert.match(list.stdout, /^quarantine\s+static, built-in\s+1/m);
    assert.equal((await bulwark('group', 'remove', 'quarantine', '--device', 'robot-1')).code, 0);
  });

  test('policies: create, diff, attach, explain, lint, versions', async () => {
    const doc = join(work.path, 'broadcast.json');
    writeFileSync(
      doc,
      JSON.stringify({
        description: 'Line broadcast',
        statements: [
          {
            sid: 'bcast',
            effect: 'allow',
            actions: ['mqtt:publish'],
            resources: ['topic/fleets/${device.fleet}/broadcast'],
          },
        ],
      }),
    );
    const created = await bulwark('policy', 'create', 'broadcast', '--file', doc);
    assert.equal(created.code, 0, created.stderr);
    const dry = await bulwark('policy', 'diff', 'broadcast', '--attach', 'fleet:plant-a');
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(
      dry.stdout,
      /^robot-1:\n {2}\+ mqtt:publish bulwark:default:topic\/fleets\/plant-a\/line-3\/broadcast$/m,
    );
    assert.equal((await bulwark('policy', 'attach', 'broadcast', 'fleet:plant-a')).code, 0);

    const yes = await bulwark(
      'policy',
      'explain',
      '--device',
      'robot-1',
      'mqtt:publish',
      'topic/fleets/plant-a/line-3/broadcast',
    );
    assert.equal(yes.code, 0, yes.stderr);
    assert.match(yes.stdout, /^ALLOWED/);
    assert.match(yes.stdout, /allow broadcast v1 statement 0 \(bcast\) — attached at fleet:plant-a/);
    const no = await bulwark('policy', 'explain', '--device', 'robot-1', 'mqtt:publish', 'topic/elsewhere');
    assert.equal(no.code, 1, 'denied: exit status 1');
    assert.match(no.stdout, /^DENIED: no statement allows it/);

    const wide = join(work.path, 'wide.json');
    writeFileSync(
      wide,
      JSON.stringify({ statements: [{ effect: 'allow', actions: ['*'], resources: ['topic/#'] }] }),
    );
    const lint = await bulwark('policy', 'lint', '--file', wide);
    assert.equal(lint.code, 1, 'a high finding fails the command');
    assert.match(lint.stdout, /high\s+wildcard-action/);
    const bad = join(work.path, 'bad.json');
    writeFileSync(
      bad,
      JSON.stringify({ statements: [{ effect: 'allow', actions: ['mqtt:pub'], resources: ['topic/a'] }] }),
    );
    const refused = await bulwark('policy', 'create', 'bad', '--file', bad);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /unknown action 'mqtt:pub' \(did you mean 'mqtt:publish'\?\)/);

    assert.equal(
      (await bulwark('policy', 'update', 'broadcast', '--file', wide, '--expected-version', '1')).code,
      0,
    );
    const conflict = await bulwark('policy', 'update', 'broadcast', '--file', doc, '--expected-version', '1');
    assert.match(conflict.stderr, /ERR_POLICY_VERSION_CONFLICT/);
    const versions = await bulwark('policy', 'versions', 'broadcast', '--json');
    assert.deepEqual(
      (JSON.parse(versions.stdout) as { items: { version: number }[] }).items.map((v) => v.version),
      [2, 1],
    );
    const target = await bulwark('policy', 'attach', 'broadcast', 'galaxy:far');
    assert.equal(target.code, 2, 'usage error');
    assert.equal((await bulwark('policy', 'detach', 'broadcast', 'fleet:plant-a')).code, 0);
    assert.equal((await bulwark('policy', 'delete', 'broadcast')).code, 0);
    const listed = await bulwark('policy', 'list');
    assert.match(listed.stdout, /^builtin:quarantine\s+built-in\s+group:quarantine/m);
  });
});
