// A small in-memory stand-in for the platform REST API, served over real HTTPS on 127.0.0.1:0.
// It follows the contract the CLI is written against (devices, certificates, telemetry, audit,
// problem+json errors) so CLI tests exercise real TLS, real headers and real JSON.

import { createServer } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Issuer } from './pki.ts';
import { makeIssuingCa, makeRootCa, makeServerCert, signCsr } from './pki.ts';

export const TOKEN = 'bwk_test_0123456789abcdef';

export interface RecordedRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  headers: IncomingMessage['headers'];
  body: unknown;
}

export interface FakeDevice {
  id: string;
  tenant: string;
  status: 'active' | 'disabled';
  attributes: Record<string, unknown>;
  createdAt: string;
  updatedAt: string;
}

export interface FakeCert {
  serial: string;
  deviceId: string;
  status: 'active' | 'revoked';
  keyType: string;
  notBefore: string;
  notAfter: string;
  revokedAt: string | null;
  fingerprint256: string;
}

export interface Reply {
  status: number;
  body?: unknown;
  /** Raw body text, sent as is (for malformed-answer tests). */
  raw?: string;
  headers?: Record<string, string>;
}

export interface FakeApi {
  url: string;
  /** PEM of the root CA that signed the server certificate (what BULWARK_CA_FILE should hold). */
  rootPem: string;
  issuingPem: string;
  requests: RecordedRequest[];
  devices: Map<string, FakeDevice>;
  certificates: FakeCert[];
  telemetry: { deviceId: string; ts: string; stream?: string; data: Record<string, unknown> }[];
  audit: {
    seq: number;
    ts: string;
    actor: string | { type: string; id: string };
    action: string;
    target?: string | { type: string; id: string };
    outcome: string;
    reason?: string;
  }[];
  /** Checked before the built-in routes; return undefined to fall through. */
  override: ((req: RecordedRequest) => Reply | undefined) | undefined;
  /** Called after each request was answered. */
  onRequest: ((req: RecordedRequest) => void) | undefined;
  close(): Promise<void>;
}

export interface Pki {
  root: Issuer;
  issuing: Issuer;
  server: { cert: string; key: string };
}

export async function makePki(name = 'Test'): Promise<Pki> {
  const root = await makeRootCa(`${name} Root CA`);
  const issuing = await makeIssuingCa(root, `${name} Issuing CA`);
  const server = await makeServerCert(root);
  return { root, issuing, server };
}

function problem(status: number, code: string, title: string, detail?: string): Reply {
  return {
    status,
    headers: { 'content-type': 'application/problem+json' },
    body: {
      type: `https://bulwark.dev/errors/${code}`,
      title,
      status,
      code,
      ...(detail === undefined ? {} : { detail }),
      requestId: 'req-42',
    },
  };
}

/** `port` 0 (default) picks a free port; a fixed one restarts a server where a client expects it. */
export async function startFakeApi(pki?: Pki, port = 0): Promise<FakeApi> {
  const { root, issuing, server: tls } = pki ?? (await makePki());
  const api: FakeApi = {
    url: '',
    rootPem: root.pem,
    issuingPem: issuing.pem,
    requests: [],
    devices: new Map(),
    certificates: [],
    telemetry: [],
    audit: [],
    override: undefined,
    onRequest: undefined,
    close: async () => {},
  };
  let clock = Date.parse('2025-06-01T12:00:00.000Z');
  const now = (): string => new Date((clock += 1000)).toISOString();

  function page<T>(
    items: T[],
    query: URLSearchParams,
    defaultLimit = 50,
  ): { items: T[]; nextCursor: string | null } {
    const limit = Number(query.get('limit') ?? defaultLimit);
    const start = Number(query.get('cursor') ?? 0);
    const slice = items.slice(start, start + limit);
    return { items: slice, nextCursor: start + limit < items.length ? String(start + limit) : null };
  }

  const reasons = [
    'unspecified',
    'keyCompromise',
    'affiliationChanged',
    'superseded',
    'cessationOfOperation',
    'privilegeWithdrawn',
  ];

  async function route(req: RecordedRequest): Promise<Reply> {
    const reason = (req.body as { reason?: unknown } | undefined)?.reason;
    if (req.path.endsWith('/revoke') && reason !== undefined && !reasons.includes(String(reason))) {
      return problem(400, 'ERR_VALIDATION', 'Request validation failed', 'reason is not allowed');
    }
    const auth = req.headers.authorization;
    if (auth === undefined) return problem(401, 'ERR_AUTH_MISSING', 'Authentication required');
    if (auth !== `Bearer ${TOKEN}`) return problem(401, 'ERR_AUTH_INVALID_TOKEN', 'Invalid token');
    const parts = req.path
      .replace(/^\/api\/v1\//, '')
      .split('/')
      .map(decodeURIComponent);
    const [a, b, c] = parts;
    const m = req.method;
    if (m === 'GET' && a === 'whoami') {
      return {
        status: 200,
        body: { id: 'sa-1', name: 'ops-bot', tenant: 'acme', role: 'admin', kind: 'service-account' },
      };
    }
    if (a === 'devices' && b === undefined) {
      if (m === 'GET') return { status: 200, body: page([...api.devices.values()], req.query) };
      if (m === 'POST') {
        const input = req.body as { id?: unknown; attributes?: Record<string, unknown> };
        if (typeof input.id !== 'string') return problem(400, 'ERR_VALIDATION', 'Request validation failed');
        if (api.devices.has(input.id)) {
          return problem(
            409,
            'ERR_DEVICE_EXISTS',
            'Device already exists',
            `device '${input.id}' already exists`,
          );
        }
        const t = now();
        const d: FakeDevice = {
          id: input.id,
          tenant: 'acme',
          status: 'active',
          attributes: input.attributes ?? {},
          createdAt: t,
          updatedAt: t,
        };
        api.devices.set(d.id, d);
        return { status: 201, body: d };
      }
    }
    if (a === 'devices' && b !== undefined) {
      const d = api.devices.get(b);
      if (d === undefined)
        return problem(404, 'ERR_DEVICE_NOT_FOUND', 'Device not found', `no device '${b}'`);
      const certs = api.certificates.filter((x) => x.deviceId === b);
      if (c === undefined && m === 'GET')
        return { status: 200, body: { ...d, certificates: certs, connected: false } };
      if (c === undefined && m === 'DELETE') {
        api.devices.delete(b);
        return { status: 204 };
      }
      if ((c === 'disable' || c === 'enable') && m === 'POST') {
        d.status = c === 'disable' ? 'disabled' : 'active';
        d.updatedAt = now();
        return { status: 200, body: d };
      }
      if (c === 'certificates' && m === 'GET') return { status: 200, body: { items: certs } };
      if (c === 'certificates' && m === 'POST') {
        if (d.status === 'disabled') return problem(409, 'ERR_DEVICE_DISABLED', 'Device disabled');
        const signed = await signCsr(issuing, String((req.body as { csr?: unknown }).csr));
        if ('error' in signed) return problem(400, signed.error, 'Invalid certificate signing request');
        const summary: FakeCert = {
          serial: signed.serial,
          deviceId: b,
          status: 'active',
          keyType: signed.keyType,
          notBefore: signed.notBefore,
          notAfter: signed.notAfter,
          revokedAt: null,
          fingerprint256: signed.fingerprint256,
        };
        api.certificates.push(summary);
        return {
          status: 201,
          body: {
            serial: signed.serial,
            certificate: signed.pem,
            chain: signed.pem + issuing.pem,
            ca: root.pem,
            notBefore: signed.notBefore,
            notAfter: signed.notAfter,
            fingerprint256: signed.fingerprint256,
            keyType: signed.keyType,
          },
        };
      }
      if (c === 'revoke' && m === 'POST') {
        const revoked: string[] = [];
        for (const x of certs) {
          if (x.status === 'active') {
            x.status = 'revoked';
            x.revokedAt = now();
            revoked.push(x.serial);
          }
        }
        return { status: 200, body: { revoked } };
      }
      if (c === 'telemetry' && m === 'GET') {
        const q = req.query;
        let rows = api.telemetry.filter((r) => r.deviceId === b);
        const from = q.get('from');
        const to = q.get('to');
        const stream = q.get('stream');
        if (from !== null) rows = rows.filter((r) => Date.parse(r.ts) >= Date.parse(from));
        if (to !== null) rows = rows.filter((r) => Date.parse(r.ts) <= Date.parse(to));
        if (stream !== null) rows = rows.filter((r) => r.stream === stream);
        rows.sort((x, y) => Date.parse(x.ts) - Date.parse(y.ts));
        if (q.get('order') === 'desc') rows.reverse();
        const items = rows.map(({ deviceId: _d, ...r }) => r);
        return { status: 200, body: page(items, q, 100) };
      }
    }
    if (a === 'certificates' && b !== undefined && c === 'revoke' && m === 'POST') {
      const x = api.certificates.find((y) => y.serial === b);
      if (x === undefined) return problem(404, 'ERR_PKI_CERT_NOT_FOUND', 'Certificate not found');
      x.status = 'revoked';
      x.revokedAt = now();
      return { status: 200, body: x };
    }
    if (a === 'audit' && m === 'GET') {
      const action = req.query.get('action');
      return {
        status: 200,
        body: page(action === null ? api.audit : api.audit.filter((e) => e.action === action), req.query),
      };
    }
    return problem(404, 'ERR_NOT_FOUND', 'No such resource');
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const text = Buffer.concat(chunks).toString('utf8');
    const url = new URL(req.url ?? '/', 'https://localhost');
    const recorded: RecordedRequest = {
      method: req.method ?? 'GET',
      path: url.pathname,
      query: url.searchParams,
      headers: req.headers,
      body: text === '' ? undefined : JSON.parse(text),
    };
    api.requests.push(recorded);
    const reply = api.override?.(recorded) ?? (await route(recorded));
    const headers: Record<string, string> = { ...(reply.headers ?? {}) };
    let payload = reply.raw;
    if (payload === undefined && reply.body !== undefined) {
      payload = JSON.stringify(reply.body);
      headers['content-type'] ??= 'application/json';
    }
    res.writeHead(reply.status, headers);
    res.end(payload);
    api.onRequest?.(recorded);
  }

  const server = createServer({ key: tls.key, cert: tls.cert }, (req, res) => {
    handle(req, res).catch((err: unknown) => {
      res.writeHead(500, { 'content-type': 'text/plain' });
      res.end(String(err));
    });
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  api.url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  api.close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return api;
}
