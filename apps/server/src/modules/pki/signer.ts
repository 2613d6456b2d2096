import { createPrivateKey, createPublicKey, webcrypto } from 'node:crypto';
import { AppError } from '../../kernel/index.ts';
import type { CaKeyProvider, KeyProtector, Signer } from './model.ts';

const curves: Record<string, { namedCurve: 'P-256' | 'P-384'; hash: 'SHA-256' | 'SHA-384' }> = {
  prime256v1: { namedCurve: 'P-256', hash: 'SHA-256' },
  secp384r1: { namedCurve: 'P-384', hash: 'SHA-384' },
};

/** A signer over a non-extractable WebCrypto ECDSA key held in this process's memory. */
export function webCryptoSigner(
  privateKey: webcrypto.CryptoKey,
  publicKey: webcrypto.CryptoKey,
  hash: string,
): Signer {
  const algorithm = { name: 'ECDSA', hash };
  return {
    publicKey,
    algorithm,
    sign: (data) => webcrypto.subtle.sign(algorithm, privateKey, data),
  };
}

/** Turns PKCS#8 bytes into a signer; the caller zeroes `pkcs8` afterwards. Only ECDSA P-256/P-384 CA keys. */
export async function signerFromPkcs8(pkcs8: Uint8Array): Promise<Signer> {
  let keyObject;
  try {
    keyObject = createPrivateKey({ key: Buffer.from(pkcs8), format: 'der', type: 'pkcs8' });
  } catch (cause) {
    throw new AppError('ERR_PKI_CA_KEY', undefined, { detail: 'CA key is not PKCS#8', cause });
  }
  const curve =
    keyObject.asymmetricKeyType === 'ec'
      ? curves[keyObject.asymmetricKeyDetails?.namedCurve ?? '']
      : undefined;
  if (!curve) {
    throw new AppError('ERR_PKI_CA_KEY', undefined, {
      detail: `CA key type ${keyObject.asymmetricKeyType ?? '?'} not supported (ECDSA P-256/P-384 only)`,
    });
  }
  const alg = { name: 'ECDSA', namedCurve: curve.namedCurve };
  const privateKey = await webcrypto.subtle.importKey('pkcs8', pkcs8, alg, false, ['sign']);
  const spki = createPublicKey(keyObject).export({ format: 'der', type: 'spki' });
  const publicKey = await webcrypto.subtle.importKey('spki', spki, alg, true, ['verify']);
  return webCryptoSigner(privateKey, publicKey, curve.hash);
}

/**
 * The default CA key provider: ECDSA P-256 keys made with WebCrypto, stored only sealed by the
 * KeyProtector (AES-256-GCM under the master key), opened into non-extractable in-memory keys.
 */
export function softwareCaKeys(keys: KeyProtector): CaKeyProvider {
  const importPkcs8 = async (pkcs8: Uint8Array) => {
    const signer = await signerFromPkcs8(pkcs8);
    const keyEnc = await keys.seal(pkcs8);
    return { signer, keyEnc };
  };
  return {
    async generate() {
      const pair = await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, [
        'sign',
        'verify',
      ]);
      const pkcs8 = new Uint8Array(await webcrypto.subtle.exportKey('pkcs8', pair.privateKey));
      try {
        return await importPkcs8(pkcs8);
      } finally {
        pkcs8.fill(0);
      }
    },
    async open(keyEnc) {
      let pkcs8: Uint8Array;
      try {
        pkcs8 = await keys.open(keyEnc);
      } catch (cause) {
        if (cause instanceof AppError && cause.code === 'ERR_PKI_CA_KEY') throw cause;
        throw new AppError('ERR_PKI_CA_KEY', undefined, { detail: 'cannot unseal CA key', cause });
      }
      try {
        return await signerFromPkcs8(pkcs8);
      } finally {
        pkcs8.fill(0);
      }
    },
    async importPkcs8(pkcs8) {
      return importPkcs8(pkcs8);
    },
  };
}
