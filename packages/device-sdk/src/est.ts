// EST (RFC 7030) enrollment: `simpleenroll` with a one-time enrollment code (HTTP Basic, user = device
// id), `simplereenroll` authenticated by the current certificate as the TLS client certificate, and
// `cacerts`. Requests carry a base64 DER PKCS#10; answers are base64 certs-only PKCS#7, read by the
// strict DER reader in pkcs7.ts. Server TLS is always verified against `ca`.

import { request, type RequestOptions } from 'node:https';
import { EnrollmentError, type Enroller, type EnrollmentResult, type RenewRequest } from './enroller.ts';
import { decodeBase64Strict, parseCertsOnlyPkcs7, Pkcs7Error } from './pkcs7.ts';

export interface EstEnrollerOptions {
  /** Platform base URL, e.g. https://bulwark.example:8443 (https only). */
  url: string;
  /** Tenant label: `/.well-known/est/<tenant>/`; default the platform's home tenant. */
  tenant?: string;
  /** PEM CA(s) to verify the platform's server certificate with (the explicit trust anchor). */
  ca: string;
  /** One-time enrollment code for `simpleenroll` (HTTP Basic password, user = device id). */
  code?: string;
  /** TLS server name, when the URL's host is not in the server certificate. */
  servername?: string;
  timeoutMs?: number;
  /** How many 202 (pending approval) answers to wait through before giving up. Default 10. */
  maxPendingRetries?: number;
  /** Upper bound for one Retry-After wait. Default 10 minutes. */
  maxRetryAfterMs?: number;
  /** For tests: how to wait `ms` before a retry. */
  sleep?: (ms: number) => Promise<void>;
}

export interface EstEnroller extends Enroller {
  /** The CA certificates the platform says to trust (`GET cacerts`), PEM, in the server's order. */
  cacerts(): Promise<string[]>;
}

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

const MAX_ANSWER = 1024 * 1024;
const LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

/** Seconds (delta) or an HTTP date; undefined when absent or unreadable. */
export function retryAfterMs(value: string | string[] | undefined, now = Date.now()): number | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (v === undefined) return undefined;
  if (/^\d+$/.test(v.trim())) return Number(v.trim()) * 1000;
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/** The server's `ERR_...: message` text, or HTTP_<status>. */
function errorOf(a: Answer, what: string): EnrollmentError {
  const text = a.body.toString('utf8').trim().slice(0, 500);
  const m = /^([A-Z][A-Z0-9_]*):\s*(.*)$/s.exec(text);
  const code = m?.[1] ?? `HTTP_${a.status}`;
  const detail = m ? m[2] : text;
  return new EnrollmentError(
    `${what} failed (${a.status} ${code})${detail ? `: ${detail}` : ''}`,
    a.status,
    code,
  );
}

function csrBase64(csrPem: string): string {
  const m = /-----BEGIN CERTIFICATE REQUEST-----([A-Za-z0-9+/=\s]+)-----END CERTIFICATE REQUEST-----/.exec(
    csrPem,
  );
  if (!m?.[1]) throw new TypeError('estEnroller: csrPem is not a PEM certificate request');
  return m[1].replace(/\s+/g, '');
}

export function estEnroller(options: EstEnrollerOptions): EstEnroller {
  const base = new URL(options.url);
  if (base.protocol !== 'https:') throw new TypeError('estEnroller: the platform URL must be https://');
  if (!options.ca?.includes('BEGIN CERTIFICATE')) throw new TypeError('estEnroller: ca must be PEM');
  if (options.tenant !== undefined && !LABEL.test(options.tenant)) {
    throw new TypeError(`estEnroller: invalid tenant label '${options.tenant}'`);
  }
  const prefix = `/.well-known/est${options.tenant !== undefined ? `/${options.tenant}` : ''}`;
  const timeoutMs = options.timeoutMs ?? 30_000;
  const maxPending = options.maxPendingRetries ?? 10;
  const maxWait = options.maxRetryAfterMs ?? 10 * 60_000;
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));

  const call = (op: string, extra: RequestOptions, body?: string): Promise<Answer> =>
    new Promise((resolve, reject) => {
      const payload = body === undefined ? undefined : Buffer.from(body, 'ascii');
      const req = request(
        new URL(`${prefix}/${op}`, base),
        {
          method: payload ? 'POST' : 'GET',
          ca: options.ca,
          ...(options.servername !== undefined ? { servername: options.servername } : {}),
          // One connection per request: no TLS session is resumed under another identity.
          agent: false,
          timeout: timeoutMs,
          ...extra,
          headers: {
            ...(payload
              ? { 'content-type': 'application/pkcs10', 'content-length': String(payload.length) }
              : {}),
            ...extra.headers,
          },
          // Verification stays on whatever `extra` says.
          rejectUnauthorized: true,
        },
        (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (c: Buffer) => {
            size += c.length;
            if (size > MAX_ANSWER) req.destroy(new Error('EST answer larger than 1 MiB'));
            else chunks.push(c);
          });
          res.on('end', () =>
            resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }),
          );
          res.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(new Error(`no EST answer within ${timeoutMs} ms`)));
      req.on('error', reject);
      req.end(payload);
    });

  const certsOf = (a: Answer, what: string): string[] => {
    const type = String(a.headers['content-type'] ?? '')
      .split(';')[0]
      ?.trim()
      .toLowerCase();
    if (type !== 'application/pkcs7-mime') {
      throw new EnrollmentError(
        `${what}: answer is ${type || 'untyped'}, not PKCS#7`,
        a.status,
        'BAD_RESPONSE',
      );
    }
    try {
      return parseCertsOnlyPkcs7(decodeBase64Strict(a.body.toString('latin1'), what));
    } catch (err) {
      if (err instanceof Pkcs7Error) {
        throw new EnrollmentError(`${what}: malformed PKCS#7: ${err.message}`, a.status, 'BAD_RESPONSE');
      }
      throw err;
    }
  };

  /** POSTs the CSR, waiting through 202 + Retry-After (bounded), and returns the certificate chain. */
  const enrollOp = async (
    op: 'simpleenroll' | 'simplereenroll',
    deviceId: string,
    csrPem: string,
    extra: RequestOptions,
  ): Promise<EnrollmentResult> => {
    const what = `EST ${op} for ${deviceId}`;
    const body = csrBase64(csrPem);
    for (let attempt = 0; ; attempt++) {
      const a = await call(op, extra, body);
      if (a.status === 200) {
        return { certificateChainPem: certsOf(a, what).join(''), caPem: options.ca };
      }
      if (a.status !== 202) throw errorOf(a, what);
      if (attempt >= maxPending) {
        throw new EnrollmentError(
          `${what} failed (202 EST_PENDING): still pending approval after ${maxPending} retries`,
          202,
          'EST_PENDING',
        );
      }
      await sleep(Math.min(retryAfterMs(a.headers['retry-after']) ?? 60_000, maxWait));
    }
  };

  return {
    async enroll({ deviceId, csrPem }) {
      if (options.code === undefined) {
        throw new TypeError('estEnroller: enroll() needs an enrollment code (options.code)');
      }
      const basic = Buffer.from(`${deviceId}:${options.code}`, 'utf8').toString('base64');
      return enrollOp('simpleenroll', deviceId, csrPem, { headers: { authorization: `Basic ${basic}` } });
    },
    async renew(req: RenewRequest) {
      return enrollOp('simplereenroll', req.deviceId, req.csrPem, {
        ...req.current.key.tlsKey(),
        cert: req.current.certificateChainPem,
      });
    },
    async cacerts() {
      const a = await call('cacerts', {});
      if (a.status !== 200) throw errorOf(a, 'EST cacerts');
      return certsOf(a, 'EST cacerts');
    },
  };
}
