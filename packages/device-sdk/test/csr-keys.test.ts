import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createCsr, fileKeyStore, generateSoftwareKey, KeyFileError } from '../src/index.ts';

const hasOpenssl = spawnSync('sh', ['-c', 'command -v openssl']).status === 0;

for (const keyType of ['p256', 'p384', 'ed25519'] as const) {
  test(
    `CSR with a ${keyType} key verifies with openssl and names the device`,
    { skip: !hasOpenssl && 'openssl not installed' },
    async () => {
      const key = generateSoftwareKey(keyType);
      const pem = await createCsr('sensor-7', key);
      assert.match(pem, /^-----BEGIN CERTIFICATE REQUEST-----\n/);
      const r = spawnSync('openssl', ['req', '-verify', '-noout', '-subject'], {
        input: pem,
        encoding: 'utf8',
      });
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stdout + r.stderr, /CN\s*=\s*sensor-7/);
      assert.match(r.stdout + r.stderr, /verif(y|ication) OK|Certificate request self-signature verify OK/i);
    },
  );
}

test(
  'CSR with a long (multi-byte length) common name still parses',
  { skip: !hasOpenssl && 'openssl not installed' },
  async () => {
    const pem = await createCsr('d'.repeat(128), generateSoftwareKey('p256'));
    const r = spawnSync('openssl', ['req', '-verify', '-noout'], { input: pem, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
  },
);

test('file key store: staged key, 0600, commit, reload; a world-readable key is refused', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'bulwark-keys-'));
  try {
    const path = join(dir, 'device.key');
    const store = fileKeyStore(path);
    assert.equal(await store.load(), undefined);
    const key = await store.generate('p256');
    assert.equal(await store.load(), undefined, 'not current before commit');
    assert.equal(statSync(`${path}.new`).mode & 0o777, 0o600);
    await store.commit(key);
    assert.equal(statSync(path).mode & 0o777, 0o600);
    const loaded = await store.load();
    assert.ok(loaded?.publicKeyDer().equals(key.publicKeyDer()));
    assert.equal(loaded?.keyType, 'p256');

    chmodSync(path, 0o644);
    await assert.rejects(store.load(), KeyFileError);
    chmodSync(path, 0o600);
    writeFileSync(path, 'not a key', { mode: 0o600 });
    await assert.rejects(store.load(), /no usable private key/);
    await assert.rejects(store.commit(generateSoftwareKey('p256')), /made by this store/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
