import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chmodSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../../../test/support/db.ts';
import {
  createKeyProtector,
  decodeMasterKey,
  keyProtectorFromKeys,
  loadOrCreateMasterKeyFile,
  masterKeyId,
} from '../src/infra/keys/index.ts';

function code(expected: string) {
  return (err: unknown) => {
    assert.equal((err as { code?: string }).code, expected, (err as Error).message);
    return true;
  };
}

const secret = new TextEncoder().encode('-----BEGIN PRIVATE KEY----- not really, but secret bytes');

describe('key protector (AES-256-GCM envelopes)', () => {
  test('seal then open round-trips, and every seal is different', async () => {
    const kp = keyProtectorFromKeys(randomBytes(32));
    const a = await kp.seal(secret);
    const b = await kp.seal(secret);
    assert.notEqual(a, b, 'fresh data key and IVs per seal');
    assert.deepEqual(await kp.open(a), secret);
    assert.deepEqual(await kp.open(b), secret);
    assert.match(
      a,
      /^bwk1\.[A-Za-z0-9_-]{11}\.[A-Za-z0-9_-]{16}\.[A-Za-z0-9_-]{64}\.[A-Za-z0-9_-]{16}\.[A-Za-z0-9_-]+$/,
    );
    assert.equal(a.split('.')[1], kp.keyId);
    assert.equal(kp.keyIdOf(a), kp.keyId);
    assert.ok(!a.includes(Buffer.from(secret).toString('base64url')));
    assert.deepEqual(await kp.open(await kp.seal(new Uint8Array(0))), new Uint8Array(0));
  });

  test('deterministic randomness is only used through the port', async () => {
    let n = 0;
    const random = (bytes: number) => new Uint8Array(bytes).fill(++n);
    const kp = keyProtectorFromKeys(new Uint8Array(32).fill(7), [], random);
    const again = keyProtectorFromKeys(new Uint8Array(32).fill(7), [], (bytes) =>
      new Uint8Array(bytes).fill(0),
    );
    const sealed = await kp.seal(secret);
    assert.deepEqual(await again.open(sealed), secret);
    assert.equal(n, 3, 'one data key and two IVs');
  });

  test('refuses tampered, foreign and malformed envelopes', async () => {
    const kp = keyProtectorFromKeys(randomBytes(32));
    const sealed = await kp.seal(secret);
    const parts = sealed.split('.');
    const flip = (i: number) =>
      parts
        .map((p, j) => {
          if (j !== i) return p;
          const b = Buffer.from(p, 'base64url');
          b[0]! ^= 1;
          return b.toString('base64url');
        })
        .join('.');
    const other = keyProtectorFromKeys(randomBytes(32));
    const cases: [string, string][] = [
      ['wrong master key (unknown key id)', await other.seal(secret)],
      [
        'key id rewritten to ours on a foreign envelope',
        (await other.seal(secret)).replace(/^bwk1\.[^.]+/, `bwk1.${kp.keyId}`),
      ],
      ['flipped wrap IV', flip(2)],
      ['flipped wrapped data key', flip(3)],
      ['flipped IV', flip(4)],
      ['flipped ciphertext', flip(5)],
      ['truncated ciphertext', parts.slice(0, 5).join('.') + '.' + parts[5]!.slice(0, 10)],
      ['ciphertext shorter than a tag', parts.slice(0, 5).join('.') + '.AAAA'],
      ['short IV', [...parts.slice(0, 4), 'AAAA', parts[5]].join('.')],
      ['swapped data fields', [parts[0], parts[1], parts[4], parts[5], parts[2], parts[3]].join('.')],
      ['other version', sealed.replace(/^bwk1/, 'bwk2')],
      ['missing field', parts.slice(0, 5).join('.')],
      ['extra field', `${sealed}.AAAA`],
      ['not base64url', sealed.replace(/\.[^.]+$/, '.!!!!')],
      ['empty', ''],
      ['plaintext PEM', '-----BEGIN PRIVATE KEY-----\nMIGHAgEA\n-----END PRIVATE KEY-----'],
    ];
    for (const [name, s] of cases) {
      await assert.rejects(kp.open(s), code('ERR_PKI_CA_KEY'), name);
    }
  });

  test('master key rotation: old envelopes open with the previous key, new ones use the current', async () => {
    const oldKey = randomBytes(32);
    const newKey = randomBytes(32);
    const before = keyProtectorFromKeys(oldKey);
    const sealedOld = await before.seal(secret);
    const after = await createKeyProtector({
      base64: newKey.toString('base64'),
      previous: [oldKey.toString('base64')],
    });
    assert.deepEqual(await after.open(sealedOld), secret);
    const sealedNew = await after.seal(secret);
    assert.equal(after.keyIdOf(sealedNew), masterKeyId(newKey));
    assert.notEqual(after.keyIdOf(sealedNew), before.keyId);
    // Without the previous key the old envelope is refused, naming the missing key id in the log detail.
    const only = await createKeyProtector({ base64: newKey.toString('base64') });
    await assert.rejects(only.open(sealedOld), (err: unknown) => {
      assert.equal((err as { code?: string }).code, 'ERR_PKI_CA_KEY');
      assert.match((err as { detail?: string }).detail ?? '', new RegExp(before.keyId));
      return true;
    });
  });

  test('master key values are validated', async () => {
    const bad: [string, string][] = [
      ['empty', ''],
      ['not base64', 'this is not base64!'],
      ['16 bytes', randomBytes(16).toString('base64')],
      ['33 bytes', randomBytes(33).toString('base64')],
      ['hex of 32 bytes', randomBytes(32).toString('hex')],
    ];
    for (const [name, value] of bad) {
      assert.throws(() => decodeMasterKey(value), code('ERR_PKI_MASTER_KEY'), name);
      await assert.rejects(createKeyProtector({ base64: value }), code('ERR_PKI_MASTER_KEY'), name);
    }
    const k = randomBytes(32);
    assert.deepEqual(decodeMasterKey(` ${k.toString('base64url')}\n`), k);
    await assert.rejects(createKeyProtector({}), code('ERR_PKI_MASTER_KEY'));
    await assert.rejects(
      createKeyProtector({ base64: k.toString('base64'), previous: ['nope'] }),
      code('ERR_PKI_MASTER_KEY'),
    );
  });

  test('master key file is created 0600 on first use and read back afterwards', async () => {
    const dir = tempDir('bulwark-keys-');
    try {
      const path = join(dir.path, 'secrets', 'master.key');
      const first = await createKeyProtector({ file: path });
      assert.equal(statSync(path).mode & 0o777, 0o600);
      assert.equal(statSync(join(dir.path, 'secrets')).mode & 0o077, 0);
      assert.equal(Buffer.from(readFileSync(path, 'utf8').trim(), 'base64').length, 32);
      const sealed = await first.seal(secret);
      const second = await createKeyProtector({ file: path });
      assert.equal(second.keyId, first.keyId);
      assert.deepEqual(await second.open(sealed), secret);
      // base64 (environment) takes precedence over the file.
      const env = randomBytes(32);
      const fromEnv = await createKeyProtector({ base64: env.toString('base64'), file: path });
      assert.equal(fromEnv.keyId, masterKeyId(env));
    } finally {
      dir.cleanup();
    }
  });

  test('concurrent first starts agree on one master key', async () => {
    const dir = tempDir('bulwark-keys-');
    try {
      const path = join(dir.path, 'master.key');
      const all = await Promise.all([1, 2, 3, 4].map(() => loadOrCreateMasterKeyFile(path)));
      for (const k of all) assert.deepEqual(k, all[0]);
    } finally {
      dir.cleanup();
    }
  });

  test(
    'master key files that are unsafe or malformed are refused',
    { skip: process.platform === 'win32' },
    async () => {
      const dir = tempDir('bulwark-keys-');
      try {
        const good = randomBytes(32).toString('base64');
        const cases: [string, string, number][] = [
          ['group-readable', good, 0o640],
          ['world-readable', good, 0o644],
          ['group-writable', good, 0o620],
          ['empty', '', 0o600],
          ['too short', randomBytes(16).toString('base64'), 0o600],
          ['not base64', 'not a key at all', 0o600],
        ];
        for (const [name, content, mode] of cases) {
          const path = join(dir.path, `${name}.key`);
          writeFileSync(path, content);
          chmodSync(path, mode);
          await assert.rejects(createKeyProtector({ file: path }), code('ERR_PKI_MASTER_KEY'), name);
        }
        // A directory where the file should be.
        await assert.rejects(createKeyProtector({ file: dir.path }), code('ERR_PKI_MASTER_KEY'));
      } finally {
        dir.cleanup();
      }
    },
  );
});
