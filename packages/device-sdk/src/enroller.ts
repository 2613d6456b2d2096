// How a device gets and renews its certificate. The SDK only needs an Enroller; `apiEnroller` uses the
// platform's REST API with an operator token (what `bulwark device create` does), for tests, labs and
// the simulator. EST (RFC 7030: simpleenroll with a one-time code, simplereenroll with the current
// certificate) implements the same interface.

import { request } from 'node:https';
import type { DeviceKey } from './key-store.ts';

export interface EnrollmentResult {
  /** The device certificate followed by its issuing CA(s), PEM: what TLS presents. */
  certificateChainPem: string;
  /** The CA to trust for the platform's server certificate, when the enrollment tells it. */
  caPem?: string;
}

export interface EnrollRequest {
  deviceId: string;
  /** PKCS#10, PEM, signed by the new key. */
  csrPem: string;
}

export interface RenewRequest extends EnrollRequest {
  /** The certificate in use and its key: EST authenticates the re-enrollment with them (mutual TLS). */
  current: { certificateChainPem: string; key: DeviceKey };
}

export interface Enroller {
  enroll(req: EnrollRequest): Promise<EnrollmentResult>;
  renew(req: RenewRequest): Promise<EnrollmentResult>;
}

export class EnrollmentError extends Error {
  override readonly name = 'EnrollmentError';
  readonly status: number;
  readonly code: string;
  constructor(message: string, status: number, code: string) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export interface ApiEnrollerOptions {
  /** Platform base URL, e.g. https://bulwark.example:8443 (https only). */
  url: string;
  /** An API token allowed `certs:issue` (and `devices:write` with `register`). */
  token: string;
  /** PEM CA to verify the platform with; default: the system roots. */
  ca?: string;
  /** Register the device first when it does not exist yet. Default false. */
  register?: boolean;
  attributes?: Record<string, string>;
  timeoutMs?: number;
}

interface Answer {
  status: number;
  body: unknown;
}

function postJson(
  base: URL,
  path: string,
  body: unknown,
  opts: { token: string; ca?: string; timeoutMs: number },
): Promise<Answer> {
  const payload = Buffer.from(JSON.stringify(body));
  return new Promise((resolve, reject) => {
    const req = request(
      new URL(path, base),
      {
        method: 'POST',
        ...(opts.ca !== undefined ? { ca: opts.ca } : {}),
        timeout: opts.timeoutMs,
        headers: {
          authorization: `Bearer ${opts.token}`,
          'content-type': 'application/json',
          'content-length': String(payload.length),
          accept: 'application/json, application/problem+json',
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > 1024 * 1024) req.destroy(new Error('enrollment answer larger than 1 MiB'));
          else chunks.push(c);
        });
        res.on('end', () => {
          let parsed: unknown;
          try {
            parsed = JSON.parse(Buffer.concat(chunks).toString('utf8'));
          } catch {
            parsed = undefined;
          }
          resolve({ status: res.statusCode ?? 0, body: parsed });
        });
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer within ${opts.timeoutMs} ms`)));
    req.on('error', reject);
    req.end(payload);
  });
}

function problemOf(a: Answer, what: string): EnrollmentError {
  const p = (a.body ?? {}) as { code?: unknown; title?: unknown; detail?: unknown };
  const code = typeof p.code === 'string' ? p.code : `HTTP_${a.status}`;
  const text = [p.title, p.detail].filter((x) => typeof x === 'string').join(': ');
  return new EnrollmentError(
    `${what} failed (${a.status} ${code})${text ? `: ${text}` : ''}`,
    a.status,
    code,
  );
}

export function apiEnroller(options: ApiEnrollerOptions): Enroller {
  const base = new URL(options.url);
  if (base.protocol !== 'https:') throw new TypeError('apiEnroller: the platform URL must be https://');
  base.pathname = '/';
  const http = {
    token: options.token,
    timeoutMs: options.timeoutMs ?? 30_000,
    ...(options.ca !== undefined ? { ca: options.ca } : {}),
  };
  const issue = async (req: EnrollRequest): Promise<EnrollmentResult> => {
    const a = await postJson(
      base,
      `/api/v1/devices/${encodeURIComponent(req.deviceId)}/certificates`,
      { csr: req.csrPem },
      http,
    );
    if (a.status !== 201) throw problemOf(a, `certificate for ${req.deviceId}`);
    const b = a.body as { certificate?: unknown; chain?: unknown; ca?: unknown };
    const chain = typeof b.chain === 'string' && b.chain.trim() !== '' ? b.chain : b.certificate;
    if (typeof chain !== 'string' || !chain.includes('BEGIN CERTIFICATE')) {
      throw new EnrollmentError('the platform answered without a certificate', a.status, 'BAD_RESPONSE');
    }
    return { certificateChainPem: chain, ...(typeof b.ca === 'string' ? { caPem: b.ca } : {}) };
  };
  return {
    async enroll(req) {
      if (options.register) {
        const a = await postJson(
          base,
          '/api/v1/devices',
          { id: req.deviceId, ...(options.attributes ? { attributes: options.attributes } : {}) },
          http,
        );
        const exists = a.status === 409 && (a.body as { code?: unknown })?.code === 'ERR_DEVICE_EXISTS';
        if (a.status !== 201 && !exists) throw problemOf(a, `registering ${req.deviceId}`);
      }
      return issue(req);
    },
    // The API flow issues against the operator token; the current certificate is not needed.
    renew: (req) => issue(req),
  };
}
