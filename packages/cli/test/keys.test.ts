import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createPrivateKey, createPublicKey } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CliError } from '../src/errors.ts';
import { createCsr, generateDeviceKey, KEY_TYPES, privateKeyPem, writeNewFile } from '../src/keys.ts';

const hasOpenssl = spawnSync('sh', ['-c', 'command -v openssl']).status === 0;
let tmp: string;
before(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'bulwark-cli-keys-'));
});
after(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe('device keys and CSRs', () => {
  const expected = {
    p256: { name: 'ECDSA', namedCurve: 'P-256' },
    p384: { name: 'ECDSA', namedCurve: 'P-384' },
    ed25519: { name: 'Ed25519' },
    rsa2048: { name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048 },
  } as const;

  for (const type of KEY_TYPES) {
    it(`${type}: the CSR names the device, carries the key and verifies`, async () => {
      const keys = await generateDeviceKey(type);
      const pem = await createCsr('sensor-1.lab:a_b', keys, type);
      assert.match(pem, /^-----BEGIN CERTIFICATE REQUEST-----\n/);
      const csr = new x509.Pkcs10CertificateRequest(pem);
      assert.equal(await csr.verify(), true);
      assert.equal(csr.subject, 'CN=sensor-1.lab:a_b');
      const alg = csr.publicKey.algorithm as unknown as Record<string, unknown>;
      for (const [k, v] of Object.entries(expected[type])) assert.equal(alg[k], v, `${type} ${k}`);

      // The PKCS#8 PEM is the private half of the key in the CSR.
      const keyPem = await privateKeyPem(keys.privateKey);
      assert.match(keyPem, /^-----BEGIN PRIVATE KEY-----\n[\s\S]+-----END PRIVATE KEY-----\n$/);
      const fromKey = createPublicKey(createPrivateKey(keyPem)).export({ type: 'spki', format: 'der' });
      assert.deepEqual(Buffer.from(fromKey), Buffer.from(csr.publicKey.rawData));

      if (hasOpenssl) {
        const csrFile = join(tmp, `${type}.csr`);
        await writeFile(csrFile, pem);
        const r = spawnSync('openssl', ['req', '-in', csrFile, '-noout', '-verify'], { encoding: 'utf8' });
        assert.equal(r.status, 0, r.stderr);
        assert.match(r.stdout + r.stderr, /verify OK/i);
      }
    });
  }

  it('a CSR signed by another key does not verify', async () => {
    const a = await generateDeviceKey('p256');
    const b = await generateDeviceKey('p256');
    const pem = await createCsr('x', { publicKey: a.publicKey, privateKey: b.privateKey }, 'p256');
    assert.equal(await new x509.Pkcs10CertificateRequest(pem).verify(), false);
  });
});

describe('writeNewFile', () => {
  it('creates the file with the mode from the start, whatever the umask', async () => {
    const path = join(tmp, 'device.key');
    const old = process.umask(0);
    try {
      await writeNewFile(path, 'secret\n', 0o600);
    } finally {
      process.umask(old);
    }
    assert.equal((await stat(path)).mode & 0o777, 0o600);
    assert.equal(await readFile(path, 'utf8'), 'secret\n');
  });

  it('refuses to overwrite an existing file and leaves it untouched', async () => {
    const path = join(tmp, 'existing.key');
    await writeFile(path, 'original');
    await assert.rejects(
      writeNewFile(path, 'new', 0o600),
      (err: unknown) => err instanceof CliError && /already exists; refusing to overwrite/.test(err.message),
    );
    assert.equal(await readFile(path, 'utf8'), 'original');
  });

  it('does not follow a symlink planted where the key goes', async () => {
    const { symlink } = await import('node:fs/promises');
    const target = join(tmp, 'target');
    const link = join(tmp, 'link.key');
    await symlink(target, link);
    await assert.rejects(writeNewFile(link, 'secret', 0o600), CliError);
    await assert.rejects(stat(target), { code: 'ENOENT' });
  });
});
