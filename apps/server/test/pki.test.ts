import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createPrivateKey, randomBytes, webcrypto, X509Certificate } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import tls from 'node:tls';
import { deviceUri } from '@bulwark/protocol';
import { backends, tempDir } from '../../../test/support/db.ts';
import { fixedClock, randomIds, silentLogger, type Db } from '../src/kernel/index.ts';
import { keyProtectorFromKeys } from '../src/infra/keys/index.ts';
import {
  createPkiService,
  createPkiStore,
  signerFromPkcs8,
  type IssuedCertificate,
  type KeyProtector,
  type PkiService,
  type RevokedEvent,
} from '../src/modules/pki/index.ts';
import { asX509Key, pemEncode, signingParams, x509 } from '../src/modules/pki/x509.ts';

const DAY = 86_400_000;
const CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';
const SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
const hasOpenssl = spawnSync('sh', ['-c', 'command -v openssl']).status === 0;

function openssl(args: string[], input?: string): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync('openssl', args, { encoding: 'utf8', ...(input !== undefined ? { input } : {}) });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

type Alg = 'P-256' | 'P-384' | 'Ed25519' | 'RSA-2048' | 'RSA-1024';

const keyAlgs: Record<
  Alg,
  {
    gen: webcrypto.AlgorithmIdentifier | webcrypto.EcKeyGenParams | webcrypto.RsaHashedKeyGenParams;
    sign: webcrypto.AlgorithmIdentifier | webcrypto.EcdsaParams;
  }
> = {
  'P-256': {
    gen: { name: 'ECDSA', namedCurve: 'P-256' },
    sign: { name: 'ECDSA', hash: 'SHA-256' } as webcrypto.EcdsaParams,
  },
  'P-384': {
    gen: { name: 'ECDSA', namedCurve: 'P-384' },
    sign: { name: 'ECDSA', hash: 'SHA-384' } as webcrypto.EcdsaParams,
  },
  Ed25519: { gen: { name: 'Ed25519' }, sign: { name: 'Ed25519' } },
  'RSA-2048': {
    gen: {
      name: 'RSASSA-PKCS1-v1_5',
      modulusLength: 2048,
      publicExponent: new Uint8Array([1, 0, 1]),
      hash: 'SHA-256',
    },
    sign: { name: 'RSASSA-PKCS1-v1_5' },
  },
  'RSA-1024': {
    gen: {
      name: 'RSASSA-PKCS1-v1_5',
      modulusLength: 1024,
      publicExponent: new Uint8Array([1, 0, 1]),
      hash: 'SHA-256',
    },
    sign: { name: 'RSASSA-PKCS1-v1_5' },
  },
};

async function makeKeys(alg: Alg): Promise<webcrypto.CryptoKeyPair> {
  return (await webcrypto.subtle.generateKey(keyAlgs[alg].gen as webcrypto.EcKeyGenParams, true, [
    'sign',
    'verify',
  ])) as webcrypto.CryptoKeyPair;
}

async function keyPemOf(keys: webcrypto.CryptoKeyPair): Promise<string> {
  return pemEncode(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey), 'PRIVATE KEY');
}

async function makeCsr(
  alg: Alg,
  opts: { cn?: string; uris?: string[]; keys?: webcrypto.CryptoKeyPair } = {},
): Promise<{ pem: string; der: Uint8Array; keys: webcrypto.CryptoKeyPair }> {
  const keys = opts.keys ?? (await makeKeys(alg));
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    ...(opts.cn !== undefined ? { name: [{ CN: [opts.cn] }] } : {}),
    keys: keys as unknown as CryptoKeyPair,
    signingAlgorithm: keyAlgs[alg].sign as Algorithm,
    extensions: opts.uris
      ? [
          new x509.SubjectAlternativeNameExtension(
            opts.uris.map((value) => ({ type: 'url' as const, value })),
          ),
        ]
      : [],
  });
  return { pem: csr.toString('pem'), der: new Uint8Array(csr.rawData), keys };
}

type CaHandle = { cert: x509.X509Certificate; signer: Awaited<ReturnType<typeof signerFromPkcs8>> };

/** A CA made outside the platform (an offline root, or an issuing CA it signs). */
async function makeExternalCa(
  issuer: CaHandle | undefined,
  name: string,
  now: number,
  opts: { ca?: boolean; pathLen?: number } = {},
): Promise<CaHandle & { pem: string; keyPem: string }> {
  const keys = await makeKeys('P-256');
  const pkcs8 = new Uint8Array(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  const own = await signerFromPkcs8(pkcs8);
  const s = signingParams(issuer ? issuer.signer : own);
  const ski = await x509.SubjectKeyIdentifierExtension.create(asX509Key(keys.publicKey));
  const cert = await x509.X509CertificateGenerator.create(
    {
      serialNumber: randomIds.serial(),
      subject: name,
      issuer: issuer ? issuer.cert.subjectName : name,
      notBefore: new Date(now - DAY),
      notAfter: new Date(now + 365 * DAY),
      publicKey: asX509Key(keys.publicKey),
      signingKey: s.signingKey,
      signingAlgorithm: s.signingAlgorithm,
      extensions: [
        new x509.BasicConstraintsExtension(opts.ca ?? true, opts.pathLen ?? (issuer ? 0 : 1), true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        ski,
        new x509.AuthorityKeyIdentifierExtension(
          (issuer?.cert.getExtension(x509.SubjectKeyIdentifierExtension) ?? ski).keyId,
        ),
      ],
    },
    s.crypto,
  );
  return { cert, signer: own, pem: cert.toString('pem') + '\n', keyPem: pemEncode(pkcs8, 'PRIVATE KEY') };
}

interface Ctx {
  db: Db;
  pki: PkiService;
  keys: KeyProtector;
  clock: ReturnType<typeof fixedClock>;
  dir: string;
  make(): PkiService;
}

for (const backend of backends) {
  describe(`pki (${backend.name})`, { skip: backend.skip }, () => {
    let ctx: Ctx;
    let cleanup: () => Promise<void>;

    before(async () => {
      const opened = await backend.open();
      const dir = tempDir('bulwark-pki-');
      const keys = keyProtectorFromKeys(randomBytes(32));
      // Real time as the start: node:tls and openssl check validity against the wall clock.
      const clock = fixedClock(Date.now());
      const make = () =>
        createPkiService({
          store: createPkiStore(opened.db),
          clock,
          ids: randomIds,
          keys,
          logger: silentLogger,
          crlBaseUrl: 'https://iot.example.com/pki/crl/',
        });
      ctx = { db: opened.db, pki: make(), keys, clock, dir: dir.path, make };
      cleanup = async () => {
        await opened.cleanup();
        dir.cleanup();
      };
    });
    after(async () => cleanup());

    const file = (name: string, content: string) => {
      const p = join(ctx.dir, name);
      writeFileSync(p, content);
      return p;
    };

    /** The tenant's issuing CA as a signer, for minting certificates the service would never issue. */
    async function tenantCa(tenantId: string) {
      const row = await ctx.db.get<{ cert_pem: string; key_enc: string }>(
        'SELECT cert_pem, key_enc FROM cas WHERE tenant_id = ? AND kind = ? AND status = ?',
        [tenantId, 'issuing', 'active'],
      );
      assert.ok(row);
      const pkcs8 = await ctx.keys.open(row.key_enc);
      return { cert: new x509.X509Certificate(row.cert_pem), signer: await signerFromPkcs8(pkcs8) };
    }

    async function mint(
      issuer:
        | { cert: x509.X509Certificate; signer: Awaited<ReturnType<typeof signerFromPkcs8>> }
        | { selfSigned: webcrypto.CryptoKeyPair; name: string },
      opts: {
        eku?: string[];
        uris?: string[];
        notBefore?: number;
        notAfter?: number;
        ca?: boolean;
      } = {},
    ): Promise<{ cert: X509Certificate; keys: webcrypto.CryptoKeyPair }> {
      const keys = await makeKeys('P-256');
      const now = ctx.clock.now();
      const extensions: x509.Extension[] = [
        new x509.BasicConstraintsExtension(opts.ca ?? false, undefined, true),
        new x509.KeyUsagesExtension(
          x509.KeyUsageFlags.digitalSignature | (opts.ca ? x509.KeyUsageFlags.keyCertSign : 0),
          true,
        ),
      ];
      if (opts.eku) extensions.push(new x509.ExtendedKeyUsageExtension(opts.eku));
      if (opts.uris?.length)
        extensions.push(
          new x509.SubjectAlternativeNameExtension(
            opts.uris.map((value) => ({ type: 'url' as const, value })),
          ),
        );
      const common = {
        serialNumber: randomIds.serial(),
        subject: [{ CN: ['minted'] }],
        notBefore: new Date(opts.notBefore ?? now - 60_000),
        notAfter: new Date(opts.notAfter ?? now + DAY),
        publicKey: asX509Key(keys.publicKey),
        extensions,
      };
      let cert: x509.X509Certificate;
      if ('selfSigned' in issuer) {
        cert = await x509.X509CertificateGenerator.create({
          ...common,
          issuer: issuer.name,
          signingKey: asX509Key(issuer.selfSigned.privateKey),
          signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' } as Algorithm,
        });
      } else {
        const s = signingParams(issuer.signer);
        cert = await x509.X509CertificateGenerator.create(
          {
            ...common,
            issuer: issuer.cert.subjectName,
            signingKey: s.signingKey,
            signingAlgorithm: s.signingAlgorithm,
          },
          s.crypto,
        );
      }
      return { cert: new X509Certificate(Buffer.from(cert.rawData)), keys };
    }

    function assertCode(code: string) {
      return (err: unknown) => {
        assert.equal(
          (err as { code?: string }).code,
          code,
          `expected ${code}, got ${(err as Error).message} ${(err as { code?: string }).code}`,
        );
        return true;
      };
    }

    test('identifyClient before load is refused as unavailable', async () => {
      const fresh = ctx.make();
      const { cert } = await mint(
        { selfSigned: await makeKeys('P-256'), name: 'CN=whoever' },
        { eku: [CLIENT_AUTH] },
      );
      assert.throws(() => fresh.identifyClient(cert), assertCode('ERR_UNAVAILABLE'));
    });

    test('ensureHierarchy creates root and tenant issuing CA once', async () => {
      await ctx.pki.load();
      await Promise.all([ctx.pki.ensureHierarchy('acme'), ctx.pki.ensureHierarchy('acme')]);
      await ctx.pki.ensureHierarchy('acme');
      // A second node on the same database sees the same hierarchy and creates nothing.
      const other = ctx.make();
      await other.ensureHierarchy('acme');
      const rows = await ctx.db.all<{ id: string; kind: string; tenant_id: string | null; cert_pem: string }>(
        'SELECT id, kind, tenant_id, cert_pem FROM cas ORDER BY id',
      );
      assert.deepEqual(
        rows.map((r) => [r.id, r.kind, r.tenant_id]),
        [
          ['issuing:acme:1', 'issuing', 'acme'],
          ['root:1', 'root', null],
        ],
      );
      const root = new x509.X509Certificate(rows[1]!.cert_pem);
      const issuing = new x509.X509Certificate(rows[0]!.cert_pem);
      assert.equal(await root.isSelfSigned(), true);
      const rootBc = root.getExtension(x509.BasicConstraintsExtension);
      assert.equal(rootBc?.ca, true);
      assert.equal(rootBc?.pathLength, 1);
      assert.equal(rootBc?.critical, true);
      const rootKu = root.getExtension(x509.KeyUsagesExtension);
      assert.equal(rootKu?.usages, x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign);
      assert.ok(root.getExtension(x509.SubjectKeyIdentifierExtension));
      assert.equal(root.publicKey.algorithm.name, 'ECDSA');
      assert.equal((root.publicKey.algorithm as EcKeyAlgorithm).namedCurve, 'P-256');
      const years = (root.notAfter.getTime() - root.notBefore.getTime()) / (365.25 * DAY);
      assert.ok(years > 9.9 && years < 10.1, `root validity ${years}y`);
      assert.equal(issuing.getExtension(x509.BasicConstraintsExtension)?.pathLength, 0);
      assert.equal(
        issuing.getExtension(x509.AuthorityKeyIdentifierExtension)?.keyId,
        root.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId,
      );
      assert.equal(await issuing.verify({ publicKey: root.publicKey, signatureOnly: true }), true);
      const iyears = (issuing.notAfter.getTime() - issuing.notBefore.getTime()) / (365.25 * DAY);
      assert.ok(iyears > 4.9 && iyears < 5.1, `issuing validity ${iyears}y`);
      // Another tenant gets its own issuing CA under the same root.
      await ctx.pki.ensureHierarchy('globex');
      const count = await ctx.db.get<{ n: number }>('SELECT COUNT(*) AS n FROM cas');
      assert.equal(Number(count?.n), 3);
    });

    test('ensureHierarchy refuses an invalid tenant id', async () => {
      for (const bad of ['', 'Acme', '-x', 'a'.repeat(64), 'a_b', 'a:b', '../x']) {
        await assert.rejects(ctx.pki.ensureHierarchy(bad), assertCode('ERR_PKI_TENANT_INVALID'), bad);
      }
    });

    test('CA private keys are stored only sealed', async () => {
      const rows = await ctx.db.all<{ id: string; key_enc: string }>('SELECT id, key_enc FROM cas');
      assert.ok(rows.length >= 2);
      for (const row of rows) {
        assert.match(row.key_enc, /^bwk1\.[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+){4}$/);
        assert.doesNotMatch(row.key_enc, /PRIVATE KEY/);
        const pkcs8 = Buffer.from(await ctx.keys.open(row.key_enc));
        const jwk = createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' }).export({ format: 'jwk' });
        const d = Buffer.from(jwk.d ?? '', 'base64url');
        assert.equal(d.length, 32);
        // Neither the PKCS#8 nor the private scalar appears in any encoding.
        for (const enc of ['hex', 'base64', 'base64url'] as const) {
          assert.ok(!row.key_enc.includes(d.toString(enc)), `scalar in ${enc}`);
          assert.ok(!row.key_enc.includes(pkcs8.subarray(-40).toString(enc)), `pkcs8 in ${enc}`);
        }
        // And it does not open with another master key.
        await assert.rejects(
          keyProtectorFromKeys(randomBytes(32)).open(row.key_enc),
          assertCode('ERR_PKI_CA_KEY'),
        );
      }
    });

    test('a sealed key swapped onto another CA row is refused', async () => {
      const keysOf = await ctx.db.all<{ id: string; key_enc: string }>(
        'SELECT id, key_enc FROM cas ORDER BY id',
      );
      const root = keysOf.find((r) => r.id === 'root:1')!;
      const acme = keysOf.find((r) => r.id === 'issuing:acme:1')!;
      await ctx.db.run('UPDATE cas SET key_enc = ? WHERE id = ?', [root.key_enc, acme.id]);
      try {
        const fresh = ctx.make();
        await fresh.load();
        const csr = await makeCsr('P-256');
        await assert.rejects(
          fresh.signDeviceCsr({ tenantId: 'acme', deviceId: 'dev-swap', csrPem: csr.pem }),
          assertCode('ERR_PKI_CA_KEY'),
        );
      } finally {
        await ctx.db.run('UPDATE cas SET key_enc = ? WHERE id = ?', [acme.key_enc, acme.id]);
      }
    });

    test('server certificate is valid for its host names and chains to the root', async () => {
      const issued = await ctx.pki.issueServerCertificate([
        'localhost',
        '127.0.0.1',
        '::1',
        'Bulwark.Example.com',
      ]);
      const leaf = new X509Certificate(issued.certPem);
      assert.equal(leaf.checkHost('localhost'), 'localhost');
      assert.equal(leaf.checkHost('bulwark.example.com'), 'bulwark.example.com');
      assert.equal(leaf.checkIP('127.0.0.1'), '127.0.0.1');
      assert.equal(leaf.checkIP('::1'), '::1');
      assert.equal(leaf.checkHost('evil.example.com'), undefined);
      assert.deepEqual(leaf.keyUsage, [SERVER_AUTH]);
      assert.equal(leaf.ca, false);
      assert.ok(leaf.checkPrivateKey(createPrivateKey(issued.keyPem)));
      const chain = issued.chainPem.split(/(?<=-----END CERTIFICATE-----\n)/).filter(Boolean);
      assert.equal(chain.length, 2);
      assert.equal(chain[0], issued.certPem);
      const intermediate = new X509Certificate(chain[1]!);
      const root = new X509Certificate(await ctx.pki.rootCaPem());
      assert.ok(leaf.checkIssued(intermediate) && leaf.verify(intermediate.publicKey));
      assert.ok(intermediate.checkIssued(root) && intermediate.verify(root.publicKey));
      const days = (issued.notAfter - Date.parse(leaf.validFrom)) / DAY;
      assert.ok(days > 364 && days < 366, `server validity ${days}d`);
      const rec = await ctx.pki.getCertificate('_platform', issued.serial);
      assert.equal(rec.kind, 'server');
      assert.deepEqual(rec.sans, ['DNS:localhost', 'IP:127.0.0.1', 'IP:::1', 'DNS:bulwark.example.com']);
      if (hasOpenssl) {
        const r = openssl([
          'verify',
          '-purpose',
          'sslserver',
          '-CAfile',
          file('root.pem', await ctx.pki.rootCaPem()),
          '-untrusted',
          file('server-chain.pem', issued.chainPem),
          file('server.pem', issued.certPem),
        ]);
        assert.equal(r.status, 0, r.stderr + r.stdout);
        assert.match(r.stdout, /OK/);
      }
    });

    test('server host names are validated', async () => {
      const bad: unknown[] = [
        [],
        ['*.example.com'],
        ['exa mple.com'],
        ['-bad.com'],
        ['a'.repeat(64) + '.com'],
        ['256.1.1.1'],
        ['01.2.3.4'],
        ['1.2.3'],
        ['fe80::1%eth0'],
        [''],
        [42],
        ['host_name'],
      ];
      for (const names of bad) {
        await assert.rejects(
          ctx.pki.issueServerCertificate(names as string[]),
          assertCode('ERR_PKI_HOSTNAME_INVALID'),
          JSON.stringify(names),
        );
      }
      await assert.rejects(
        ctx.pki.issueServerCertificate(['localhost'], { validityDays: 0 }),
        assertCode('ERR_PKI_VALIDITY_INVALID'),
      );
    });

    const issuedByAlg = new Map<Alg, { issued: IssuedCertificate; keys: webcrypto.CryptoKeyPair }>();

    for (const alg of ['P-256', 'P-384', 'Ed25519', 'RSA-2048'] as const) {
      test(`signDeviceCsr issues a device certificate for a ${alg} CSR`, async () => {
        const deviceId = `dev-${alg.toLowerCase()}`;
        const csr = await makeCsr(alg, { cn: deviceId, uris: [deviceUri('acme', deviceId)] });
        const issued = await ctx.pki.signDeviceCsr({ tenantId: 'acme', deviceId, csrPem: csr.pem });
        issuedByAlg.set(alg, { issued, keys: csr.keys });
        assert.equal(issued.keyType, alg);
        const cert = new x509.X509Certificate(issued.certificatePem);
        assert.equal(cert.subject, `CN=${deviceId}, O=acme`);
        const san = cert.getExtension(x509.SubjectAlternativeNameExtension);
        assert.deepEqual(san?.names.toJSON(), [
          { type: 'url', value: `urn:bulwark:acme:device:${deviceId}` },
        ]);
        const ku = cert.getExtension(x509.KeyUsagesExtension);
        assert.equal(ku?.usages, x509.KeyUsageFlags.digitalSignature);
        assert.equal(ku?.critical, true);
        assert.deepEqual(
          [...(cert.getExtension(x509.ExtendedKeyUsageExtension)?.usages ?? [])],
          [CLIENT_AUTH],
        );
        assert.equal(cert.getExtension(x509.BasicConstraintsExtension)?.ca, false);
        assert.ok(cert.getExtension(x509.SubjectKeyIdentifierExtension));
        assert.ok(cert.getExtension(x509.AuthorityKeyIdentifierExtension));
        const dp = cert.getExtension(x509.CRLDistributionPointsExtension);
        assert.match(
          JSON.stringify(dp?.distributionPoints),
          /https:\/\/iot\.example\.com\/pki\/crl\/acme\.crl/,
        );
        assert.equal(issued.notAfter - ctx.clock.now() <= 90 * DAY, true);
        assert.ok(issued.notAfter - ctx.clock.now() > 89.9 * DAY);
        assert.equal(issued.notBefore, cert.notBefore.getTime());
        assert.equal(issued.notAfter, cert.notAfter.getTime());
        assert.equal(issued.caPem, await ctx.pki.rootCaPem());
        assert.equal(issued.fingerprint256, new X509Certificate(issued.certificatePem).fingerprint256);
        const rec = await ctx.pki.getCertificate('acme', issued.serial);
        assert.equal(rec.deviceId, deviceId);
        assert.equal(rec.status, 'active');
        assert.equal(rec.keyType, alg);
        assert.equal(rec.fingerprint256, issued.fingerprint256);
        const id = ctx.pki.identifyClient(new X509Certificate(issued.certificatePem));
        assert.deepEqual(id, {
          tenantId: 'acme',
          deviceId,
          caId: 'issuing:acme:1',
          serial: issued.serial,
          fingerprint256: issued.fingerprint256,
          notAfter: issued.notAfter,
        });
        if (hasOpenssl) {
          const r = openssl([
            'verify',
            '-purpose',
            'sslclient',
            '-CAfile',
            file('root.pem', issued.caPem),
            '-untrusted',
            file(`${deviceId}-chain.pem`, issued.chainPem),
            file(`${deviceId}.pem`, issued.certificatePem),
          ]);
          assert.equal(r.status, 0, r.stderr + r.stdout);
        }
      });
    }

    test(
      'signDeviceCsr accepts a CSR made by openssl req, as PEM, base64 DER with CR/LF, and DER',
      { skip: !hasOpenssl },
      async () => {
        const key = join(ctx.dir, 'ossl.key');
        const r = openssl([
          'req',
          '-new',
          '-newkey',
          'ec',
          '-pkeyopt',
          'ec_paramgen_curve:P-256',
          '-nodes',
          '-keyout',
          key,
          '-subj',
          '/CN=dev-ossl',
        ]);
        assert.equal(r.status, 0, r.stderr);
        const pemIssued = await ctx.pki.signDeviceCsr({
          tenantId: 'acme',
          deviceId: 'dev-ossl',
          csrPem: r.stdout,
        });
        assert.equal(pemIssued.keyType, 'P-256');
        // EST (RFC 7030 §4.2.1) sends base64 DER; RFC 8951: line breaks must be tolerated.
        const der = spawnSync('openssl', ['req', '-in', file('ossl.csr', r.stdout), '-outform', 'DER']);
        assert.equal(der.status, 0);
        const b64 = der.stdout.toString('base64').replace(/(.{64})/g, '$1\r\n');
        const b64Issued = await ctx.pki.signDeviceCsr({
          tenantId: 'acme',
          deviceId: 'dev-ossl',
          csrPem: b64,
        });
        const rawIssued = await ctx.pki.signDeviceCsr({
          tenantId: 'acme',
          deviceId: 'dev-ossl',
          csrPem: new Uint8Array(der.stdout),
        });
        assert.notEqual(b64Issued.serial, rawIssued.serial);
        // The certificate is for the key openssl made.
        const leaf = new X509Certificate(b64Issued.certificatePem);
        assert.ok(leaf.checkPrivateKey(createPrivateKey(readFileSync(key))));
      },
    );

    test('signDeviceCsr refuses malformed and unacceptable CSRs', async () => {
      const good = await makeCsr('P-256', { cn: 'dev-1' });
      const goodDer = good.der;
      const tampered = new Uint8Array(goodDer);
      tampered[tampered.length - 5]! ^= 0x01; // inside the signature value
      const tamperedSubject = new Uint8Array(goodDer);
      const cnAt = Buffer.from(tamperedSubject).indexOf(Buffer.from('dev-1'));
      tamperedSubject[cnAt + 4] = '2'.charCodeAt(0); // dev-1 -> dev-2 after signing
      const pem = (bytes: Uint8Array, label = 'CERTIFICATE REQUEST') => pemEncode(bytes, label);
      const rsa1024 = await makeCsr('RSA-1024', { cn: 'dev-1' });
      const cases: [string, string | Uint8Array, string][] = [
        ['empty string', '', 'ERR_PKI_CSR_INVALID'],
        ['garbage text', 'hello world, this is not a CSR', 'ERR_PKI_CSR_INVALID'],
        ['garbage base64', Buffer.from('not a csr at all').toString('base64'), 'ERR_PKI_CSR_INVALID'],
        ['garbage bytes', new Uint8Array(randomBytes(200)), 'ERR_PKI_CSR_INVALID'],
        ['truncated DER', goodDer.slice(0, goodDer.length - 20), 'ERR_PKI_CSR_INVALID'],
        ['truncated PEM', good.pem.slice(0, 120), 'ERR_PKI_CSR_INVALID'],
        ['trailing bytes after DER', new Uint8Array([...goodDer, 0, 0, 0]), 'ERR_PKI_CSR_INVALID'],
        ['wrong PEM label', pem(goodDer, 'CERTIFICATE'), 'ERR_PKI_CSR_INVALID'],
        [
          'mismatched PEM labels',
          pem(goodDer).replace('END CERTIFICATE REQUEST', 'END PRIVATE KEY'),
          'ERR_PKI_CSR_INVALID',
        ],
        [
          'a certificate, not a CSR',
          pem(
            new Uint8Array(
              Buffer.from(
                issuedByAlg.get('P-256')!.issued.certificatePem.replace(/-----[^-]+-----|\s/g, ''),
                'base64',
              ),
            ),
          ),
          'ERR_PKI_CSR_INVALID',
        ],
        ['oversized input', 'A'.repeat(40_000), 'ERR_PKI_CSR_INVALID'],
        ['valid CSR with tampered signature', pem(tampered), 'ERR_PKI_CSR_SIGNATURE'],
        ['valid CSR with subject changed after signing', pem(tamperedSubject), 'ERR_PKI_CSR_SIGNATURE'],
        ['RSA-1024 key', rsa1024.pem, 'ERR_PKI_KEY_TYPE'],
        [
          'CSR naming another device in CN',
          (await makeCsr('P-256', { cn: 'dev-2' })).pem,
          'ERR_PKI_CSR_IDENTITY',
        ],
        [
          'CSR naming another device in SAN URI',
          (await makeCsr('P-256', { uris: [deviceUri('acme', 'dev-2')] })).pem,
          'ERR_PKI_CSR_IDENTITY',
        ],
        [
          'CSR naming the device in another tenant',
          (await makeCsr('P-256', { uris: [deviceUri('globex', 'dev-1')] })).pem,
          'ERR_PKI_CSR_IDENTITY',
        ],
        [
          'CSR with a second, foreign SAN URI',
          (await makeCsr('P-256', { uris: [deviceUri('acme', 'dev-1'), 'https://evil.example'] })).pem,
          'ERR_PKI_CSR_IDENTITY',
        ],
      ];
      if (hasOpenssl) {
        const ossl = (args: string[]) => {
          const r = openssl(['req', '-new', ...args, '-nodes', '-keyout', '/dev/null', '-subj', '/CN=dev-1']);
          assert.equal(r.status, 0, r.stderr);
          return r.stdout;
        };
        cases.push(
          [
            'P-192 key (openssl)',
            ossl(['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-192']),
            'ERR_PKI_KEY_TYPE',
          ],
          [
            'secp256k1 key (openssl)',
            ossl(['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:secp256k1']),
            'ERR_PKI_KEY_TYPE',
          ],
          ['RSA-1024 key (openssl)', ossl(['-newkey', 'rsa:1024']), 'ERR_PKI_KEY_TYPE'],
          ['SHA-1 signature (openssl)', ossl(['-newkey', 'rsa:2048', '-sha1']), 'ERR_PKI_CSR_SIGNATURE'],
          [
            'RSA-2048 with exponent 3 (openssl)',
            ossl(['-newkey', 'rsa:2048', '-pkeyopt', 'rsa_keygen_pubexp:3']),
            'ERR_PKI_KEY_TYPE',
          ],
          ['Ed448 key (openssl)', ossl(['-newkey', 'ed448']), 'ERR_PKI_KEY_TYPE'],
          [
            'RSA-PSS-only key (openssl)',
            ossl(['-newkey', 'rsa-pss', '-pkeyopt', 'rsa_keygen_bits:2048']),
            'ERR_PKI_KEY_TYPE',
          ],
        );
      }
      for (const [name, csrPem, code] of cases) {
        await assert.rejects(
          ctx.pki.signDeviceCsr({ tenantId: 'acme', deviceId: 'dev-1', csrPem }),
          assertCode(code),
          name,
        );
      }
      // The input checks come before the CSR is even parsed.
      await assert.rejects(
        ctx.pki.signDeviceCsr({ tenantId: 'ACME', deviceId: 'dev-1', csrPem: good.pem }),
        assertCode('ERR_PKI_TENANT_INVALID'),
      );
      await assert.rejects(
        ctx.pki.signDeviceCsr({ tenantId: 'acme', deviceId: 'dev/1', csrPem: good.pem }),
        assertCode('ERR_DEVICE_INVALID_ID'),
      );
      for (const validityDays of [0, -1, 1.5, 398, Number.NaN]) {
        await assert.rejects(
          ctx.pki.signDeviceCsr({ tenantId: 'acme', deviceId: 'dev-1', csrPem: good.pem, validityDays }),
          assertCode('ERR_PKI_VALIDITY_INVALID'),
          String(validityDays),
        );
      }
      // ... and nothing was recorded for any of them.
      const n = await ctx.db.get<{ n: number }>(
        'SELECT COUNT(*) AS n FROM certificates WHERE device_id = ?',
        ['dev-1'],
      );
      assert.equal(Number(n?.n), 0);
      // A custom validity is honoured.
      const short = await ctx.pki.signDeviceCsr({
        tenantId: 'acme',
        deviceId: 'dev-1',
        csrPem: good.pem,
        validityDays: 7,
      });
      assert.ok(short.notAfter - ctx.clock.now() <= 7 * DAY && short.notAfter - ctx.clock.now() > 6.9 * DAY);
    });

    test('identifyClient refuses certificates it must not trust', async () => {
      const acme = await tenantCa('acme');
      const acmeName = acme.cert.subject;
      const now = ctx.clock.now();
      // Same subject DN as the real issuing CA, different key: only the signature tells them apart.
      const impostorKeys = await makeKeys('P-256');
      const impostor = await mint(
        { selfSigned: impostorKeys, name: acmeName },
        { eku: [CLIENT_AUTH], uris: [deviceUri('acme', 'dev-x')] },
      );
      const server = await ctx.pki.issueServerCertificate(['localhost']);
      const cases: [string, X509Certificate, string][] = [
        ['certificate from an unknown CA with the same name', impostor.cert, 'ERR_PKI_UNKNOWN_ISSUER'],
        [
          'self-signed certificate',
          (
            await mint(
              { selfSigned: await makeKeys('P-256'), name: 'CN=minted' },
              { eku: [CLIENT_AUTH], uris: [deviceUri('acme', 'dev-x')] },
            )
          ).cert,
          'ERR_PKI_UNKNOWN_ISSUER',
        ],
        ['platform server certificate', new X509Certificate(server.certPem), 'ERR_PKI_UNKNOWN_ISSUER'],
        [
          'the issuing CA certificate itself',
          new X509Certificate(acme.cert.toString('pem')),
          'ERR_PKI_UNKNOWN_ISSUER',
        ],
        ['root CA certificate', new X509Certificate(await ctx.pki.rootCaPem()), 'ERR_PKI_UNKNOWN_ISSUER'],
        [
          'certificate naming another tenant',
          (await mint(acme, { eku: [CLIENT_AUTH], uris: [deviceUri('globex', 'dev-x')] })).cert,
          'ERR_PKI_UNKNOWN_ISSUER',
        ],
        [
          'expired certificate',
          (
            await mint(acme, {
              eku: [CLIENT_AUTH],
              uris: [deviceUri('acme', 'dev-x')],
              notBefore: now - 10 * DAY,
              notAfter: now - DAY,
            })
          ).cert,
          'ERR_PKI_CERT_EXPIRED',
        ],
        [
          'not yet valid certificate',
          (
            await mint(acme, {
              eku: [CLIENT_AUTH],
              uris: [deviceUri('acme', 'dev-x')],
              notBefore: now + DAY,
              notAfter: now + 10 * DAY,
            })
          ).cert,
          'ERR_PKI_CERT_NOT_YET_VALID',
        ],
        [
          'serverAuth-only certificate',
          (await mint(acme, { eku: [SERVER_AUTH], uris: [deviceUri('acme', 'dev-x')] })).cert,
          'ERR_PKI_CERT_USAGE',
        ],
        [
          'certificate without EKU',
          (await mint(acme, { uris: [deviceUri('acme', 'dev-x')] })).cert,
          'ERR_PKI_CERT_USAGE',
        ],
        [
          'CA:true certificate',
          (await mint(acme, { ca: true, eku: [CLIENT_AUTH], uris: [deviceUri('acme', 'dev-x')] })).cert,
          'ERR_PKI_CERT_USAGE',
        ],
        ['no SAN URI', (await mint(acme, { eku: [CLIENT_AUTH] })).cert, 'ERR_PKI_CERT_IDENTITY'],
        [
          'SAN URI that is not a device URI',
          (await mint(acme, { eku: [CLIENT_AUTH], uris: ['https://acme.example/dev-x'] })).cert,
          'ERR_PKI_CERT_IDENTITY',
        ],
        [
          'SAN URI with an invalid device id',
          (await mint(acme, { eku: [CLIENT_AUTH], uris: ['urn:bulwark:acme:device:-bad'] })).cert,
          'ERR_PKI_CERT_IDENTITY',
        ],
        [
          'two SAN URIs',
          (
            await mint(acme, {
              eku: [CLIENT_AUTH],
              uris: [deviceUri('acme', 'dev-x'), deviceUri('acme', 'dev-y')],
            })
          ).cert,
          'ERR_PKI_CERT_IDENTITY',
        ],
        [
          'SAN URI with an injected second entry',
          (
            await mint(acme, {
              eku: [CLIENT_AUTH],
              uris: [`${deviceUri('acme', 'dev-x')}, URI:${deviceUri('acme', 'dev-y')}`],
            })
          ).cert,
          'ERR_PKI_CERT_IDENTITY',
        ],
      ];
      for (const [name, cert, code] of cases) {
        assert.throws(() => ctx.pki.identifyClient(cert), assertCode(code), name);
      }
      // The fake clock decides validity: an issued certificate expires after 90 days, not before.
      const { issued } = issuedByAlg.get('P-256')!;
      const leaf = new X509Certificate(issued.certificatePem);
      const start = ctx.clock.now();
      try {
        ctx.clock.set(issued.notAfter - 1000);
        assert.equal(ctx.pki.identifyClient(leaf).deviceId, 'dev-p-256');
        ctx.clock.set(issued.notAfter + 1000);
        assert.throws(() => ctx.pki.identifyClient(leaf), assertCode('ERR_PKI_CERT_EXPIRED'));
        ctx.clock.set(issued.notBefore - 1000);
        assert.throws(() => ctx.pki.identifyClient(leaf), assertCode('ERR_PKI_CERT_NOT_YET_VALID'));
      } finally {
        ctx.clock.set(start);
      }
    });

    test('issued certificates work for mutual TLS 1.3 and identifyClient names the device', async () => {
      const server = await ctx.pki.issueServerCertificate(['localhost', '127.0.0.1']);
      const { issued, keys } = issuedByAlg.get('P-256')!;
      const srv = tls.createServer(
        {
          key: server.keyPem,
          cert: server.chainPem,
          ca: await ctx.pki.trustAnchorsPem(),
          requestCert: true,
          rejectUnauthorized: true,
          minVersion: 'TLSv1.3',
        },
        (socket) => {
          try {
            const cert = socket.getPeerX509Certificate();
            assert.ok(cert);
            socket.end(JSON.stringify({ ok: ctx.pki.identifyClient(cert), protocol: socket.getProtocol() }));
          } catch (err) {
            socket.end(JSON.stringify({ err: (err as { code?: string }).code }));
          }
        },
      );
      await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
      const port = (srv.address() as { port: number }).port;
      const connect = (opts: tls.ConnectionOptions) =>
        new Promise<string>((resolve, reject) => {
          const s = tls.connect({
            host: '127.0.0.1',
            port,
            servername: 'localhost',
            ca: issued.caPem,
            minVersion: 'TLSv1.3',
            ...opts,
          });
          let data = '';
          s.on('data', (d: Buffer) => (data += d.toString()));
          s.on('end', () => resolve(data));
          s.on('error', reject);
        });
      try {
        for (const alg of ['P-256', 'Ed25519', 'RSA-2048'] as const) {
          const entry = issuedByAlg.get(alg)!;
          const reply = JSON.parse(
            await connect({ cert: entry.issued.chainPem, key: await keyPemOf(entry.keys) }),
          ) as { ok?: { deviceId: string; tenantId: string; serial: string }; protocol?: string };
          assert.equal(reply.protocol, 'TLSv1.3', alg);
          assert.equal(reply.ok?.deviceId, `dev-${alg.toLowerCase()}`);
          assert.equal(reply.ok?.tenantId, 'acme');
          assert.equal(reply.ok?.serial, entry.issued.serial);
        }
        // A client sending only its leaf (no intermediate) is accepted too: the issuing CAs are anchors.
        const leafOnly = JSON.parse(
          await connect({ cert: issued.certificatePem, key: await keyPemOf(keys) }),
        ) as { ok?: { deviceId: string } };
        assert.equal(leafOnly.ok?.deviceId, 'dev-p-256');
        // A certificate from a foreign CA does not get through the handshake.
        const foreignKeys = await makeKeys('P-256');
        const foreign = await mint(
          { selfSigned: foreignKeys, name: 'CN=foreign' },
          { eku: [CLIENT_AUTH], uris: [deviceUri('acme', 'dev-x')] },
        );
        await assert.rejects(
          connect({ cert: foreign.cert.toString(), key: await keyPemOf(foreign.keys) }).then((d) => {
            if (!d) throw new Error('closed');
            return d;
          }),
        );
      } finally {
        await new Promise<void>((resolve) => srv.close(() => resolve()));
      }
    });

    test('revocation fires onRevoked, bites identifyClient at once and is idempotent', async () => {
      const events: RevokedEvent[] = [];
      const off = ctx.pki.onRevoked((e) => events.push(e));
      const { issued } = issuedByAlg.get('P-384')!;
      const leaf = new X509Certificate(issued.certificatePem);
      assert.equal(ctx.pki.identifyClient(leaf).deviceId, 'dev-p-384');
      assert.equal(ctx.pki.isRevoked(issued.serial), false);
      const rec = await ctx.pki.revokeCertificate('acme', issued.serial.toUpperCase(), 'keyCompromise');
      assert.equal(rec.status, 'revoked');
      assert.equal(rec.revocationReason, 'keyCompromise');
      assert.equal(rec.revokedAt, ctx.clock.now());
      assert.deepEqual(events, [
        {
          tenantId: 'acme',
          deviceId: 'dev-p-384',
          serial: issued.serial,
          fingerprint256: issued.fingerprint256,
        },
      ]);
      assert.equal(ctx.pki.isRevoked(issued.serial), true);
      assert.equal(ctx.pki.isRevoked(`00${issued.serial.toUpperCase()}`), true);
      assert.throws(() => ctx.pki.identifyClient(leaf), assertCode('ERR_PKI_CERT_REVOKED'));
      // Again: same record, no second event.
      const again = await ctx.pki.revokeCertificate('acme', issued.serial);
      assert.equal(again.revocationReason, 'keyCompromise');
      assert.equal(events.length, 1);
      // Another node loading from the database knows it too.
      const other = ctx.make();
      await other.load();
      assert.throws(() => other.identifyClient(leaf), assertCode('ERR_PKI_CERT_REVOKED'));
      // Refusals.
      await assert.rejects(ctx.pki.revokeCertificate('acme', 'abcdef'), assertCode('ERR_PKI_CERT_NOT_FOUND'));
      await assert.rejects(
        ctx.pki.revokeCertificate('globex', issuedByAlg.get('P-256')!.issued.serial),
        assertCode('ERR_PKI_CERT_NOT_FOUND'),
      );
      await assert.rejects(
        ctx.pki.revokeCertificate('acme', issued.serial, 'because' as never),
        assertCode('ERR_PKI_REVOCATION_REASON'),
      );
      await assert.rejects(ctx.pki.getCertificate('acme', 'abcdef'), assertCode('ERR_PKI_CERT_NOT_FOUND'));
      // A listener that throws does not break revocation.
      const offBad = ctx.pki.onRevoked(() => {
        throw new Error('listener bug');
      });
      const a = await ctx.pki.signDeviceCsr({
        tenantId: 'acme',
        deviceId: 'dev-many',
        csrPem: (await makeCsr('P-256')).pem,
      });
      const b = await ctx.pki.signDeviceCsr({
        tenantId: 'acme',
        deviceId: 'dev-many',
        csrPem: (await makeCsr('P-256')).pem,
      });
      const all = await ctx.pki.revokeDeviceCertificates('acme', 'dev-many', 'cessationOfOperation');
      assert.deepEqual(all.map((c) => c.serial).sort(), [a.serial, b.serial].sort());
      assert.equal(events.length, 3);
      assert.deepEqual(await ctx.pki.revokeDeviceCertificates('acme', 'dev-many'), []);
      offBad();
      off();
    });

    test('revocation bites a resumed TLS session, which skips certificate verification', async () => {
      const server = await ctx.pki.issueServerCertificate(['localhost']);
      const csr = await makeCsr('P-256');
      const issued = await ctx.pki.signDeviceCsr({
        tenantId: 'acme',
        deviceId: 'dev-resume',
        csrPem: csr.pem,
      });
      const srv = tls.createServer(
        {
          key: server.keyPem,
          cert: server.chainPem,
          ca: await ctx.pki.trustAnchorsPem(),
          requestCert: true,
          rejectUnauthorized: true,
          minVersion: 'TLSv1.3',
          ticketKeys: randomBytes(48),
        },
        (socket) => {
          let reply: object;
          try {
            reply = {
              ok: ctx.pki.identifyClient(socket.getPeerX509Certificate()!),
              resumed: socket.isSessionReused(),
            };
          } catch (err) {
            reply = { err: (err as { code?: string }).code, resumed: socket.isSessionReused() };
          }
          // Wait for the client to ask, so the TLS 1.3 session ticket has reached it first.
          socket.once('data', () => socket.end(JSON.stringify(reply)));
        },
      );
      await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
      const port = (srv.address() as { port: number }).port;
      const key = await keyPemOf(csr.keys);
      const connect = (session?: Buffer) =>
        new Promise<{
          reply: { ok?: { deviceId: string }; err?: string; resumed: boolean };
          session?: Buffer;
        }>((resolve, reject) => {
          const s = tls.connect({
            host: '127.0.0.1',
            port,
            servername: 'localhost',
            ca: issued.caPem,
            cert: issued.chainPem,
            key,
            ...(session ? { session } : {}),
          });
          let ticket: Buffer | undefined;
          let data = '';
          s.on('session', (t: Buffer) => (ticket = t));
          s.once('secureConnect', () => setTimeout(() => s.write('?'), 20));
          s.on('data', (d: Buffer) => (data += d.toString()));
          s.on('end', () =>
            resolve({ reply: JSON.parse(data) as never, ...(ticket ? { session: ticket } : {}) }),
          );
          s.on('error', reject);
        });
      try {
        const first = await connect();
        assert.equal(first.reply.ok?.deviceId, 'dev-resume');
        assert.equal(first.reply.resumed, false);
        assert.ok(first.session, 'got a session ticket');
        await ctx.pki.revokeCertificate('acme', issued.serial, 'keyCompromise');
        const second = await connect(first.session);
        assert.equal(second.reply.resumed, true, 'the handshake resumed without verifying the certificate');
        assert.equal(second.reply.err, 'ERR_PKI_CERT_REVOKED');
      } finally {
        await new Promise<void>((resolve) => srv.close(() => resolve()));
      }
    });

    test('CRL lists the revoked serials, is signed by the issuing CA and verifies with openssl', async () => {
      const revoked = issuedByAlg.get('P-384')!.issued;
      const pem1 = await ctx.pki.crlPem('acme');
      assert.match(pem1, /^-----BEGIN X509 CRL-----\n/);
      assert.equal(await ctx.pki.crlPem('acme'), pem1, 'cached while nothing changes');
      const crl = new x509.X509Crl(await ctx.pki.crlDer('acme'));
      const acme = await tenantCa('acme');
      assert.equal(await crl.verify({ publicKey: acme.cert.publicKey }), true);
      assert.equal(crl.issuer, acme.cert.subject);
      assert.ok(crl.findRevoked(revoked.serial), 'revoked serial listed');
      assert.equal(crl.findRevoked(issuedByAlg.get('P-256')!.issued.serial), null, 'live serial not listed');
      const revokedCount = async () =>
        Number(
          (
            await ctx.db.get<{ n: number }>(
              'SELECT COUNT(*) AS n FROM certificates WHERE tenant_id = ? AND status = ?',
              ['acme', 'revoked'],
            )
          )?.n,
        );
      const before = await revokedCount();
      assert.ok(before >= 3);
      assert.equal(crl.entries.length, before);
      assert.equal(crl.nextUpdate!.getTime() - crl.thisUpdate.getTime(), DAY);
      const number1 = crl.getExtension('2.5.29.20');
      assert.ok(number1);
      // The platform server certificate's CA and other tenants are not in this CRL; globex has its own (empty).
      const globex = new x509.X509Crl(await ctx.pki.crlDer('globex'));
      assert.equal(globex.entries.length, 0);
      await assert.rejects(ctx.pki.crlPem('nobody'), assertCode('ERR_PKI_CA_NOT_FOUND'));
      await assert.rejects(ctx.pki.crlPem('Bad!'), assertCode('ERR_PKI_TENANT_INVALID'));
      // A change re-signs it with a higher CRL number.
      ctx.clock.advance(1000);
      const { issued } = issuedByAlg.get('Ed25519')!;
      await ctx.pki.revokeCertificate('acme', issued.serial, 'superseded');
      const pem2 = await ctx.pki.crlPem('acme');
      assert.notEqual(pem2, pem1);
      const crl2 = new x509.X509Crl(pem2.replace(/X509 CRL/g, 'X509 CRL'));
      assert.equal(crl2.entries.length, before + 1);
      const num = (c: x509.X509Crl) =>
        BigInt('0x' + Buffer.from(c.getExtension('2.5.29.20')!.value).subarray(2).toString('hex'));
      assert.ok(num(crl2) > num(crl));
      // Half-way through its validity it is re-signed even without changes.
      ctx.clock.advance(DAY / 2 + 1000);
      const pem3 = await ctx.pki.crlPem('acme');
      assert.notEqual(pem3, pem2);
      assert.ok(num(new x509.X509Crl(pem3)) > num(crl2));
      ctx.clock.set(Date.now());
      if (hasOpenssl) {
        const chain = file('acme-chain.pem', (await ctx.pki.rootCaPem()) + acme.cert.toString('pem') + '\n');
        const crlFile = file('acme.crl', await ctx.pki.crlPem('acme'));
        const v = openssl(['crl', '-in', crlFile, '-CAfile', chain, '-noout']);
        assert.equal(v.status, 0, v.stderr);
        assert.match(v.stderr + v.stdout, /verify OK/);
        const text = openssl(['crl', '-in', crlFile, '-noout', '-text']);
        assert.match(text.stdout, new RegExp(`Serial Number: 0*${revoked.serial.toUpperCase()}`));
        assert.match(text.stdout, /Key Compromise/);
        assert.match(text.stdout, /X509v3 CRL Number/);
        // And openssl verify with CRL checking rejects the revoked certificate, accepts a live one.
        const check = (name: string, pem: string) =>
          openssl(['verify', '-crl_check', '-CRLfile', crlFile, '-CAfile', chain, file(name, pem)]);
        const bad = check('revoked.pem', revoked.certificatePem);
        assert.notEqual(bad.status, 0);
        assert.match(bad.stderr + bad.stdout, /certificate revoked/);
        const ok = check('live.pem', issuedByAlg.get('P-256')!.issued.certificatePem);
        assert.equal(ok.status, 0, ok.stderr + ok.stdout);
        // The DER form is the same CRL.
        const derFile = join(ctx.dir, 'acme.der.crl');
        writeFileSync(derFile, await ctx.pki.crlDer('acme'));
        const d = openssl(['crl', '-inform', 'DER', '-in', derFile, '-CAfile', chain, '-noout']);
        assert.match(d.stderr + d.stdout, /verify OK/);
      }
    });

    test('listCertificates filters and pages', async () => {
      const all: string[] = [];
      let cursor: string | undefined;
      do {
        const page = await ctx.pki.listCertificates({
          tenantId: 'acme',
          limit: 3,
          ...(cursor ? { cursor } : {}),
        });
        assert.ok(page.items.length <= 3);
        all.push(...page.items.map((c) => c.serial));
        cursor = page.nextCursor ?? undefined;
      } while (cursor);
      const total = await ctx.db.get<{ n: number }>(
        'SELECT COUNT(*) AS n FROM certificates WHERE tenant_id = ?',
        ['acme'],
      );
      assert.equal(all.length, Number(total?.n));
      assert.equal(new Set(all).size, all.length);
      const revoked = await ctx.pki.listCertificates({ tenantId: 'acme', status: 'revoked' });
      assert.ok(revoked.items.length >= 4 && revoked.items.every((c) => c.status === 'revoked'));
      const mine = await ctx.pki.listCertificates({ tenantId: 'acme', deviceId: 'dev-p-256' });
      assert.deepEqual(
        mine.items.map((c) => c.deviceId),
        ['dev-p-256'],
      );
      const short = await ctx.pki.listCertificates({
        tenantId: 'acme',
        expiringBefore: ctx.clock.now() + 8 * DAY,
      });
      assert.deepEqual(
        short.items.map((c) => c.deviceId),
        ['dev-1'],
      );
      // After 91 days the 90-day certificates are expired, the 7-day one too.
      const start = ctx.clock.now();
      ctx.clock.advance(91 * DAY);
      const expired = await ctx.pki.listCertificates({ tenantId: 'acme', status: 'expired' });
      assert.ok(expired.items.length > 0 && expired.items.every((c) => c.status === 'expired'));
      assert.equal((await ctx.pki.listCertificates({ tenantId: 'acme', status: 'active' })).items.length, 0);
      ctx.clock.set(start);
      for (const cursor of [
        'nope',
        Buffer.from('{"a":1}').toString('base64url'),
        Buffer.from('[1]').toString('base64url'),
      ]) {
        await assert.rejects(
          ctx.pki.listCertificates({ tenantId: 'acme', cursor }),
          assertCode('ERR_PAGE_CURSOR'),
          cursor,
        );
      }
      for (const limit of [0, 501, 1.5]) {
        await assert.rejects(
          ctx.pki.listCertificates({ tenantId: 'acme', limit }),
          assertCode('ERR_VALIDATION'),
        );
      }
      await assert.rejects(ctx.pki.listCertificates({ tenantId: 'A' }), assertCode('ERR_PKI_TENANT_INVALID'));
    });

    test('trust anchors hold the root and every tenant issuing CA, and change listeners fire', async () => {
      const bundle = await ctx.pki.trustAnchorsPem();
      const certs = bundle
        .split(/(?<=-----END CERTIFICATE-----\n)/)
        .filter(Boolean)
        .map((p) => new X509Certificate(p));
      const root = new X509Certificate(await ctx.pki.rootCaPem());
      assert.equal(certs[0]?.fingerprint256, root.fingerprint256);
      assert.deepEqual(
        certs
          .slice(1)
          .map((c) => c.subject.match(/OU=(.*)/)?.[1])
          .sort(),
        ['acme', 'globex'],
      );
      let changed = 0;
      const off = ctx.pki.onTrustAnchorsChanged(() => changed++);
      await ctx.pki.ensureHierarchy('initech');
      await ctx.pki.ensureHierarchy('initech');
      assert.equal(changed, 1);
      off();
      assert.ok((await ctx.pki.trustAnchorsPem()).length > bundle.length);
    });

    test('importIssuingCa installs a CA signed elsewhere and refuses bad ones', async () => {
      // Made "offline": signed with the root key read out of the database, as an operator would with an offline root.
      const rootRow = await ctx.db.get<{ cert_pem: string; key_enc: string }>(
        'SELECT cert_pem, key_enc FROM cas WHERE id = ?',
        ['root:1'],
      );
      assert.ok(rootRow);
      const root = {
        cert: new x509.X509Certificate(rootRow.cert_pem),
        signer: await signerFromPkcs8(await ctx.keys.open(rootRow.key_enc)),
      };
      const makeCa = async (signer: typeof root, opts: { ca?: boolean } = {}) => {
        const keys = await makeKeys('P-256');
        const s = signingParams(signer.signer);
        const cert = await x509.X509CertificateGenerator.create(
          {
            serialNumber: randomIds.serial(),
            subject: [{ CN: ['Offline Issuing CA hooli'] }, { O: ['Hooli'] }],
            issuer: signer.cert.subjectName,
            notBefore: new Date(ctx.clock.now() - DAY),
            notAfter: new Date(ctx.clock.now() + 365 * DAY),
            publicKey: asX509Key(keys.publicKey),
            signingKey: s.signingKey,
            signingAlgorithm: s.signingAlgorithm,
            extensions: [
              new x509.BasicConstraintsExtension(opts.ca ?? true, 0, true),
              new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
              await x509.SubjectKeyIdentifierExtension.create(asX509Key(keys.publicKey)),
              new x509.AuthorityKeyIdentifierExtension(
                signer.cert.getExtension(x509.SubjectKeyIdentifierExtension)!.keyId,
              ),
            ],
          },
          s.crypto,
        );
        return { pem: cert.toString('pem'), keyPem: await keyPemOf(keys) };
      };
      const good = await makeCa(root);
      const foreignRootKeys = await makeKeys('P-256');
      const foreignRoot = await x509.X509CertificateGenerator.createSelfSigned({
        name: 'CN=Foreign Root',
        keys: foreignRootKeys as unknown as CryptoKeyPair,
        signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' } as Algorithm,
        extensions: [await x509.SubjectKeyIdentifierExtension.create(asX509Key(foreignRootKeys.publicKey))],
      });
      const foreign = await makeCa({
        cert: foreignRoot,
        signer: await signerFromPkcs8(
          new Uint8Array(await webcrypto.subtle.exportKey('pkcs8', foreignRootKeys.privateKey)),
        ),
      });
      const notCa = await makeCa(root, { ca: false });
      const other = await makeCa(root);
      const cases: [string, string, string, string][] = [
        ['garbage certificate', 'not a cert', good.keyPem, 'ERR_PKI_CA_INVALID'],
        ['not signed by the platform root', foreign.pem, foreign.keyPem, 'ERR_PKI_CA_INVALID'],
        ['not a CA', notCa.pem, notCa.keyPem, 'ERR_PKI_CA_INVALID'],
        ['key of another certificate', good.pem, other.keyPem, 'ERR_PKI_CA_INVALID'],
        ['key not PEM', good.pem, 'nope', 'ERR_PKI_CA_INVALID'],
      ];
      for (const [name, certPem, keyPem, code] of cases) {
        await assert.rejects(ctx.pki.importIssuingCa('hooli', certPem, keyPem), assertCode(code), name);
      }
      await assert.rejects(
        ctx.pki.importIssuingCa('acme', good.pem, good.keyPem),
        assertCode('ERR_PKI_CA_EXISTS'),
      );
      await ctx.pki.importIssuingCa('hooli', good.pem, good.keyPem);
      const issued = await ctx.pki.signDeviceCsr({
        tenantId: 'hooli',
        deviceId: 'dev-h',
        csrPem: (await makeCsr('P-256')).pem,
      });
      assert.equal(ctx.pki.identifyClient(new X509Certificate(issued.certificatePem)).tenantId, 'hooli');
      const row = await ctx.db.get<{ key_enc: string }>('SELECT key_enc FROM cas WHERE tenant_id = ?', [
        'hooli',
      ]);
      assert.match(row?.key_enc ?? '', /^bwk1\./);
    });
  });

  describe(`pki with an offline root (${backend.name})`, { skip: backend.skip }, () => {
    test('importIssuingCa adopts the root that comes with the chain, without its key', async () => {
      const opened = await backend.open();
      try {
        const keys = keyProtectorFromKeys(randomBytes(32));
        const clock = fixedClock(Date.now());
        const pki = createPkiService({
          store: createPkiStore(opened.db),
          clock,
          ids: randomIds,
          keys,
          logger: silentLogger,
        });
        await pki.load();
        const now = clock.now();
        const root = await makeExternalCa(undefined, 'CN=Offline Root, O=Umbrella', now);
        const tenantCa = await makeExternalCa(root, 'CN=Umbrella Devices CA, O=Umbrella', now);
        const platformCa = await makeExternalCa(root, 'CN=Umbrella Servers CA, O=Umbrella', now);
        const stranger = await makeExternalCa(undefined, 'CN=Stranger Root', now);
        const strangersCa = await makeExternalCa(stranger, 'CN=Stranger CA', now);
        const notCa = await makeExternalCa(root, 'CN=Not a CA', now, { ca: false });
        const refusals: [string, string, string][] = [
          ['no root yet and none in the chain', tenantCa.pem, tenantCa.keyPem],
          ['chain root that did not sign the CA', tenantCa.pem + stranger.pem, tenantCa.keyPem],
          ['second certificate is not self-signed', tenantCa.pem + platformCa.pem, tenantCa.keyPem],
          ['three certificates', tenantCa.pem + root.pem + root.pem, tenantCa.keyPem],
          ['no certificate', 'hello', tenantCa.keyPem],
          ['certificate that is not a CA', notCa.pem + root.pem, notCa.keyPem],
          [
            'EC private key in SEC1 form',
            tenantCa.pem + root.pem,
            tenantCa.keyPem.replace(/PRIVATE KEY/g, 'EC PRIVATE KEY'),
          ],
          ['key of another CA', tenantCa.pem + root.pem, platformCa.keyPem],
        ];
        for (const [name, certPem, keyPem] of refusals) {
          await assert.rejects(
            pki.importIssuingCa('umbrella', certPem, keyPem),
            { code: 'ERR_PKI_CA_INVALID' },
            name,
          );
        }
        assert.equal(
          Number((await opened.db.get<{ n: number }>('SELECT COUNT(*) AS n FROM cas'))?.n),
          0,
          'refusals leave nothing behind',
        );
        await pki.importIssuingCa('umbrella', tenantCa.pem + root.pem, tenantCa.keyPem);
        await pki.importIssuingCa('_platform', platformCa.pem + root.pem, platformCa.keyPem);
        await assert.rejects(pki.importIssuingCa('umbrella', tenantCa.pem, tenantCa.keyPem), {
          code: 'ERR_PKI_CA_EXISTS',
        });
        // Once adopted, the root is the anchor: a chain with another root is refused.
        await assert.rejects(
          pki.importIssuingCa('stranger', strangersCa.pem + stranger.pem, strangersCa.keyPem),
          { code: 'ERR_PKI_CA_INVALID' },
        );
        const rootRow = await opened.db.get<{ key_enc: string | null; kind: string }>(
          'SELECT key_enc, kind FROM cas WHERE id = ?',
          ['root:1'],
        );
        assert.deepEqual({ ...rootRow }, { key_enc: null, kind: 'root' });
        assert.equal(
          new X509Certificate(await pki.rootCaPem()).fingerprint256,
          new X509Certificate(root.pem).fingerprint256,
        );
        const csr = await makeCsr('P-256');
        const issued = await pki.signDeviceCsr({ tenantId: 'umbrella', deviceId: 'u-1', csrPem: csr.pem });
        assert.equal(pki.identifyClient(new X509Certificate(issued.certificatePem)).deviceId, 'u-1');
        const server = await pki.issueServerCertificate(['localhost']);
        assert.ok(new X509Certificate(server.certPem).verify(new X509Certificate(platformCa.pem).publicKey));
        // A new tenant needs the offline root to sign its CA: refused, not silently re-rooted.
        await assert.rejects(pki.ensureHierarchy('newcomer'), { code: 'ERR_PKI_CA_KEY' });
        if (hasOpenssl) {
          const dir = tempDir('bulwark-pki-offline-');
          try {
            const ca = join(dir.path, 'root.pem');
            writeFileSync(ca, root.pem);
            const chain = join(dir.path, 'chain.pem');
            writeFileSync(chain, issued.chainPem);
            const r = openssl(['verify', '-purpose', 'sslclient', '-CAfile', ca, '-untrusted', chain, chain]);
            assert.equal(r.status, 0, r.stderr + r.stdout);
          } finally {
            dir.cleanup();
          }
        }
      } finally {
        await opened.cleanup();
      }
    });
  });
}
