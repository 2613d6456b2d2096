// The release workflow through the real bulwark binary: offline keys, first root, a release uploaded
// from a file, signed locally, downloadable by a device.
import 'reflect-metadata';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tempDir } from '../../../test/support/db.ts';
import { startPlatform, type Platform } from '../../../test/support/platform.ts';

const BIN = fileURLToPath(new URL('../../../packages/cli/bin/bulwark.js', import.meta.url));

describe('bulwark release', () => {
  let p: Platform;
  let work: { path: string; cleanup(): void };
  const cli = (...args: string[]) =>
    new Promise<{ code: number; stdout: string; stderr: string }>((resolve, reject) => {
      const child = spawn(process.execPath, [BIN, ...args], {
        cwd: work.path,
        env: {
          PATH: process.env.PATH,
          HOME: work.path,
          BULWARK_CONFIG_DIR: join(work.path, 'config'),
          BULWARK_URL: p.url,
          BULWARK_TOKEN: p.token,
          BULWARK_CA_FILE: p.app.paths.caFile,
        },
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      child.on('error', reject);
      child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    });
  before(async () => {
    p = await startPlatform();
    work = tempDir('bulwark-release-cli-');
  });
  after(async () => {
    await p.close();
    work.cleanup();
  });

  test('keygen writes 0600 key files and never overwrites them', async () => {
    const r = await cli('release', 'keygen', '--out', 'keys');
    assert.equal(r.code, 0, r.stderr);
    for (const f of ['root.key', 'targets.key'])
      assert.equal(statSync(join(work.path, 'keys', f)).mode & 0o777, 0o600);
    const again = await cli('release', 'keygen', '--out', 'keys');
    assert.equal(again.code, 1);
    assert.match(again.stderr, /already exists; refusing to overwrite it/);
  });

  test('sign sets the repository up, then publishes a release created from a file', async () => {
    const first = await cli(
      'release',
      'sign',
      '--key',
      'keys/root.key',
      '--key',
      'keys/targets.key',
      '--json',
    );
    assert.equal(first.code, 0, first.stderr);
    const signed = JSON.parse(first.stdout) as { signed: { role: string; published: boolean }[] };
    assert.deepEqual(
      signed.signed.map((s) => [s.role, s.published]),
      [
        ['root', true],
        ['targets', true],
      ],
    );
    writeFileSync(join(work.path, 'fw.bin'), randomBytes(5000));
    writeFileSync(
      join(work.path, 'bom.json'),
      JSON.stringify({ bomFormat: 'CycloneDX', specVersion: '1.5' }),
    );
    const created = await cli(
      'release',
      'create',
      'sensor-fw',
      '1.0.1',
      '--file',
      'fw.bin',
      '--hardware',
      'sensor-v2,sensor-v3',
      '--sbom',
      'bom.json',
      '--json',
    );
    assert.equal(created.code, 0, created.stderr);
    const rel = JSON.parse(created.stdout) as { id: string; state: string; size: number; hasSbom: boolean };
    assert.equal(rel.state, 'unsigned');
    assert.equal(rel.size, 5000);
    assert.equal(rel.hasSbom, true);
    const dry = await cli('release', 'sign', '--key', 'keys/targets.key', '--dry-run');
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(dry.stderr, /\+ sensor-fw\/1\.0\.1/);
    // A key file others can read is refused.
    chmodSync(join(work.path, 'keys', 'targets.key'), 0o644);
    const loose = await cli('release', 'sign', '--key', 'keys/targets.key');
    assert.equal(loose.code, 1);
    assert.match(loose.stderr, /readable by others/);
    chmodSync(join(work.path, 'keys', 'targets.key'), 0o600);
    // The root key may not sign targets.
    const wrong = await cli('release', 'sign', '--key', 'keys/root.key');
    assert.match(wrong.stderr, /none of the given keys may sign targets metadata/);
    const ok = await cli('release', 'sign', '--key', 'keys/targets.key');
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stderr, /targets version 2 published/);
    const show = JSON.parse((await cli('release', 'show', rel.id, '--json')).stdout) as { state: string };
    assert.equal(show.state, 'published');
    const status = await cli('release', 'status');
    assert.match(status.stdout, /targets\s+version 2/);
    const key = JSON.parse(readFileSync(join(work.path, 'keys', 'targets.key'), 'utf8')) as {
      public: string;
    };
    const stored = await p.app.db.get<{ n: number }>(
      "SELECT COUNT(*) AS n FROM ota_tuf_keys WHERE role = 'targets' AND public_hex = ? AND sealed_private IS NULL",
      [key.public],
    );
    assert.equal(Number(stored?.n), 1);
  });
});
