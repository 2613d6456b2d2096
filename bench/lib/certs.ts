// Test PKI for the benchmark: one CA, a server certificate for 127.0.0.1/localhost and client
// certificates, all ECDSA P-256 / SHA-256, written as PEM files both brokers can read. Made fresh for
// every run (a second or two), so nothing secret is kept in the repository.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { webcrypto } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

type X509Key = x509.X509CertificateCreateWithKeyParams['signingKey'];
type X509Crypto = NonNullable<Parameters<typeof x509.X509CertificateGenerator.create>[1]>;

const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };

export interface CertFiles {
  /** Common name; the bench brokers take it as the client's identity. */
  name: string;
  cert: string;
  key: string;
}

export interface CertSet {
  dir: string;
  ca: string;
  server: CertFiles;
  /** `clients.get(name)` */
  clients: Map<string, CertFiles>;
}

let providerSet = false;

function pem(der: ArrayBuffer, label: string): string {
  return x509.PemConverter.encode(der, label);
}

async function keyPair(): Promise<webcrypto.CryptoKeyPair> {
  return (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
}

/** Writes CA, server and one client certificate per name into `dir`. */
export async function makeCerts(dir: string, clientNames: readonly string[]): Promise<CertSet> {
  if (!providerSet) {
    x509.cryptoProvider.set(webcrypto as unknown as X509Crypto);
    providerSet = true;
  }
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const notBefore = new Date(Date.now() - 3600_000);
  const notAfter = new Date(Date.now() + 7 * 86400_000);
  let serial = 0x10000000;
  const nextSerial = () => (serial++).toString(16);

  const caKeys = await keyPair();
  const caCert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: nextSerial(),
    name: 'CN=Bulwark bench CA',
    notBefore,
    notAfter,
    keys: caKeys as unknown as CryptoKeyPair,
    signingAlgorithm: alg,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(caKeys.publicKey as unknown as CryptoKey),
    ],
  });
  const caFile = join(dir, 'ca.crt');
  writeFileSync(caFile, caCert.toString('pem') + '\n');
  const aki = await x509.AuthorityKeyIdentifierExtension.create(caCert);

  const issue = async (name: string, server: boolean): Promise<CertFiles> => {
    const keys = await keyPair();
    const extensions: x509.Extension[] = [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension(
        [server ? x509.ExtendedKeyUsage.serverAuth : x509.ExtendedKeyUsage.clientAuth],
        false,
      ),
      aki,
    ];
    if (server) {
      extensions.push(
        new x509.SubjectAlternativeNameExtension([
          { type: 'dns', value: 'localhost' },
          { type: 'ip', value: '127.0.0.1' },
        ]),
      );
    }
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: nextSerial(),
      subject: `CN=${name}`,
      issuer: caCert.subject,
      notBefore,
      notAfter,
      signingKey: caKeys.privateKey as unknown as X509Key,
      publicKey: keys.publicKey as unknown as CryptoKey,
      signingAlgorithm: alg,
      extensions,
    });
    const pkcs8 = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey);
    const certFile = join(dir, `${name}.crt`);
    const keyFile = join(dir, `${name}.key`);
    writeFileSync(certFile, cert.toString('pem') + '\n');
    writeFileSync(keyFile, pem(pkcs8, 'PRIVATE KEY') + '\n', { mode: 0o600 });
    return { name, cert: certFile, key: keyFile };
  };

  const server = await issue('server', true);
  const clients = new Map<string, CertFiles>();
  for (const n of clientNames) clients.set(n, await issue(n, false));
  return { dir, ca: caFile, server, clients };
}

/** A P-256 key made here ("on the device") and a CSR for it, as a device enrolling would send. */
export async function makeCsr(commonName: string): Promise<{ keyPem: string; csrPem: string }> {
  if (!providerSet) {
    x509.cryptoProvider.set(webcrypto as unknown as X509Crypto);
    providerSet = true;
  }
  const keys = await keyPair();
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: `CN=${commonName}`,
    keys: keys as unknown as CryptoKeyPair,
    signingAlgorithm: alg,
  });
  const pkcs8 = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey);
  return { keyPem: pem(pkcs8, 'PRIVATE KEY'), csrPem: csr.toString('pem') };
}
