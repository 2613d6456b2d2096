// Device keys are made here, on the operator's machine, and never leave it: the platform only sees the CSR.

import 'reflect-metadata'; // @peculiar/x509 v2 needs the Reflect metadata API before it loads.
import * as x509 from '@peculiar/x509';
import { webcrypto } from 'node:crypto';

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;
type Algorithm = webcrypto.Algorithm;
type EcdsaParams = webcrypto.EcdsaParams;
type EcKeyGenParams = webcrypto.EcKeyGenParams;
type RsaHashedKeyGenParams = webcrypto.RsaHashedKeyGenParams;
type X509Keys = Parameters<typeof x509.Pkcs10CertificateRequestGenerator.create>[0]['keys'];
type X509Crypto = typeof x509.cryptoProvider extends { get(): infer C } ? C : never;
import { open } from 'node:fs/promises';
import { CliError } from './errors.ts';

export const KEY_TYPES = ['p256', 'p384', 'ed25519', 'rsa2048'] as const;
export type KeyType = (typeof KEY_TYPES)[number];

export function isKeyType(v: string): v is KeyType {
  return (KEY_TYPES as readonly string[]).includes(v);
}

interface KeyAlgorithm {
  label: string;
  generate: RsaHashedKeyGenParams | EcKeyGenParams | Algorithm;
  sign: Algorithm | EcdsaParams;
}

const algorithms: Record<KeyType, KeyAlgorithm> = {
  p256: {
    label: 'ECDSA P-256',
    generate: { name: 'ECDSA', namedCurve: 'P-256' },
    sign: { name: 'ECDSA', hash: 'SHA-256' } as EcdsaParams,
  },
  p384: {
    label: 'ECDSA P-384',
    generate: { name: 'ECDSA', namedCurve: 'P-384' },
    sign: { name: 'ECDSA', hash: 'SHA-384' } as EcdsaParams,
  },
  ed25519: { label: 'Ed25519', generate: { name: 'Ed25519' }, sign: { name: 'Ed25519' } },
  // PKCS#1 v1.5 rather than PSS: it is what every TLS stack and MQTT client accepts.
  rsa2048: {
    label: 'RSA 2048',
    generate: {
      name: 'RSASSA-PKCS1-v1_5',
      modulusLength: 2048,
      publicExponent: new Uint8Array([1, 0, 1]),
      hash: 'SHA-256',
    } as RsaHashedKeyGenParams,
    sign: { name: 'RSASSA-PKCS1-v1_5' },
  },
};

export function keyTypeLabel(type: KeyType): string {
  return algorithms[type].label;
}

let providerSet = false;
function useNodeCrypto(): void {
  if (!providerSet) {
    // Node's webcrypto is the Web Crypto API; the library's types name the DOM one.
    x509.cryptoProvider.set(webcrypto as unknown as X509Crypto);
    providerSet = true;
  }
}

export type { CryptoKeyPair };

export async function generateDeviceKey(type: KeyType): Promise<CryptoKeyPair> {
  const keys = await webcrypto.subtle.generateKey(algorithms[type].generate, true, ['sign', 'verify']);
  return keys as CryptoKeyPair;
}

/** PKCS#10 CSR (PEM) with subject CN=<deviceId>, signed by the device key (proof of possession). */
export async function createCsr(deviceId: string, keys: CryptoKeyPair, type: KeyType): Promise<string> {
  useNodeCrypto();
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: [{ CN: [deviceId] }],
    keys: keys as unknown as X509Keys,
    signingAlgorithm: algorithms[type].sign,
  });
  return csr.toString('pem');
}

/** The private key as PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`), the format OpenSSL and mosquitto read. */
export async function privateKeyPem(key: CryptoKey): Promise<string> {
  const der = await webcrypto.subtle.exportKey('pkcs8', key);
  return x509.PemConverter.encode(der, 'PRIVATE KEY') + '\n';
}

/**
 * Creates a file that must not exist yet, with its final mode from the first byte: `wx` fails on an
 * existing file (or symlink), so a key is never overwritten and never briefly world-readable.
 */
export async function writeNewFile(path: string, data: string, mode: number): Promise<void> {
  let handle;
  try {
    handle = await open(path, 'wx', mode);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
      throw new CliError(`${path} already exists; refusing to overwrite it`, {
        hint: 'move it away or choose another directory with --out',
      });
    }
    throw new CliError(`cannot create ${path}: ${(err as Error).message}`, { cause: err });
  }
  try {
    await handle.writeFile(data);
    await handle.sync();
  } finally {
    await handle.close();
  }
}
