// Typed client for the Bulwark REST API. HTTPS only, verified against the CA the caller passes
// (or the system roots when none is passed): there is deliberately no way to turn verification off.
// node:https rather than fetch, because fetch cannot take a custom CA without undici.

import { Agent, request as httpsRequest } from 'node:https';
import type { IncomingHttpHeaders } from 'node:http';
import { createOperations, type Operations } from '@bulwark/api-client';
import type {
  AttachmentTargetType,
  DiffInput,
  Explanation,
  ExplainInput,
  Fleet,
  Group,
  LintFinding,
  Policy,
  PolicyDiff,
  PolicyInput,
  PolicyVersionEntry,
  AuditEntry,
  AuditQuery,
  CertificateSummary,
  CreateDeviceInput,
  Device,
  DeviceDetail,
  IssuedCertificate,
  Page,
  PageQuery,
  TelemetryQuery,
  TelemetryRow,
  Whoami,
} from './types.ts';

export interface ApiClientOptions {
  /** Platform base URL, e.g. `https://bulwark.example:8443`. Must be https. */
  url: string;
  /** Bearer token; absent only for the public sign-in calls (`bulwark login --sso`). */
  token: string | undefined;
  /** PEM CA certificate(s) to trust instead of the system roots. */
  ca?: string | Buffer | undefined;
  /** Per-request timeout (connect + response). Default 30 s. */
  timeoutMs?: number | undefined;
  userAgent?: string | undefined;
}

/** An `application/problem+json` body (RFC 9457). `code` is a string: a newer server may send codes we do not know. */
export interface ApiProblem {
  type: string;
  title: string;
  status: number;
  code: string;
  detail?: string;
  instance?: string;
  requestId?: string;
  errors?: { path: string; message: string }[];
}

/** The server answered with an error status. */
export class ApiError extends Error {
  override readonly name = 'ApiError';
  readonly status: number;
  readonly problem: ApiProblem;

  constructor(problem: ApiProblem) {
    super(problem.detail === undefined ? problem.title : `${problem.title}: ${problem.detail}`);
    this.status = problem.status;
    this.problem = problem;
  }

  get code(): string {
    return this.problem.code;
  }
}

/** The server could not be reached, or its certificate could not be verified. */
export class ConnectionError extends Error {
  override readonly name = 'ConnectionError';
  /** Node's error code, e.g. `ECONNREFUSED`, `SELF_SIGNED_CERT_IN_CHAIN`, `ETIMEDOUT`. */
  readonly code: string;
  readonly hint: string;
  readonly url: string;

  constructor(message: string, code: string, hint: string, url: string, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.code = code;
    this.hint = hint;
    this.url = url;
  }
}

export interface ApiResponse {
  status: number;
  headers: IncomingHttpHeaders;
  /** Parsed JSON body; undefined for an empty body (204). */
  body: unknown;
}

export interface RequestOptions {
  query?: Record<string, string | number | undefined> | undefined;
  body?: unknown;
}

export interface ApiClient {
  readonly baseUrl: string;
  /** Any API call: resolves with the parsed body of a 2xx answer, rejects with ApiError or ConnectionError. */
  request(method: string, path: string, options?: RequestOptions): Promise<ApiResponse>;
  /** Every operation of the API, typed, generated from its OpenAPI document (@bulwark/api-client). */
  readonly ops: Operations;
  whoami(): Promise<Whoami>;
  createDevice(input: CreateDeviceInput): Promise<Device>;
  listDevices(query?: PageQuery): Promise<Page<Device>>;
  getDevice(id: string): Promise<DeviceDetail>;
  disableDevice(id: string): Promise<Device>;
  enableDevice(id: string): Promise<Device>;
  deleteDevice(id: string): Promise<void>;
  issueCertificate(deviceId: string, csrPem: string): Promise<IssuedCertificate>;
  listCertificates(deviceId: string): Promise<{ items: CertificateSummary[] }>;
  /** Revokes every certificate of the device; its live sessions are dropped. */
  revokeDevice(deviceId: string, options?: { reason?: string | undefined }): Promise<{ revoked: string[] }>;
  revokeCertificate(serial: string, options?: { reason?: string | undefined }): Promise<CertificateSummary>;
  listTelemetry(deviceId: string, query?: TelemetryQuery): Promise<Page<TelemetryRow>>;
  listAudit(query?: AuditQuery): Promise<Page<AuditEntry>>;
  listPolicies(): Promise<{ items: Policy[] }>;
  getPolicy(id: string): Promise<Policy>;
  createPolicy(input: PolicyInput & { id: string }): Promise<Policy>;
  updatePolicy(id: string, input: PolicyInput): Promise<Policy>;
  deletePolicy(id: string): Promise<void>;
  policyVersions(id: string): Promise<{ items: PolicyVersionEntry[] }>;
  attachPolicy(id: string, target: { targetType: AttachmentTargetType; targetId?: string }): Promise<Policy>;
  detachPolicy(id: string, target: { targetType: AttachmentTargetType; targetId?: string }): Promise<Policy>;
  explain(input: ExplainInput): Promise<Explanation>;
  lintPolicy(input: { id?: string; statements: unknown[] }): Promise<{ findings: LintFinding[] }>;
  lintStoredPolicy(id: string): Promise<{ findings: LintFinding[] }>;
  diffPolicy(id: string, input: DiffInput & { maxDevices?: number }): Promise<PolicyDiff>;
  createFleet(input: { path: string; description?: string }): Promise<Fleet>;
  listFleets(query?: PageQuery & { under?: string | undefined }): Promise<Page<Fleet>>;
  getFleet(path: string): Promise<Fleet>;
  deleteFleet(path: string): Promise<void>;
  moveDevice(deviceId: string, fleet: string | null): Promise<Device>;
  createGroup(input: {
    name: string;
    kind: 'static' | 'dynamic';
    query?: string;
    description?: string;
  }): Promise<Group>;
  listGroups(): Promise<{ items: Group[] }>;
  getGroup(name: string): Promise<Group>;
  updateGroup(name: string, input: { query?: string; description?: string }): Promise<Group>;
  deleteGroup(name: string): Promise<void>;
  addGroupMembers(name: string, deviceIds: string[]): Promise<{ added: string[] }>;
  removeGroupMembers(name: string, deviceIds: string[]): Promise<{ removed: string[] }>;
  listGroupMembers(name: string, query?: PageQuery): Promise<Page<string>>;
  /** Closes kept-alive connections. */
  close(): void;
}

const MAX_BODY_BYTES = 32 * 1024 * 1024;
const API_PREFIX = '/api/v1';

/** Normalises a user-supplied base URL; throws TypeError with a readable message when unusable. */
export function parseBaseUrl(input: string): URL {
  let url: URL;
  try {
    url = new URL(input);
  } catch {
    throw new TypeError(`'${input}' is not a URL (expected e.g. https://bulwark.example:8443)`);
  }
  if (url.protocol !== 'https:') {
    throw new TypeError(`'${input}' is not an https:// URL: the platform only speaks HTTPS`);
  }
  if (url.username !== '' || url.password !== '') {
    throw new TypeError('the URL must not contain credentials; use --token');
  }
  url.search = '';
  url.hash = '';
  // Accept both https://host:8443 and https://host:8443/api/v1 (people copy either).
  url.pathname = url.pathname.replace(/\/+$/, '').replace(/\/api\/v1$/, '');
  return url;
}

export function createApiClient(options: ApiClientOptions): ApiClient {
  const base = parseBaseUrl(options.url);
  if (options.token !== undefined && (options.token === '' || /[\r\n]/.test(options.token))) {
    throw new TypeError('the API token is empty or contains a line break');
  }
  const baseUrl = base.href.replace(/\/$/, '');
  const timeoutMs = options.timeoutMs ?? 30_000;
  const agent = new Agent({ keepAlive: true, ...(options.ca === undefined ? {} : { ca: options.ca }) });
  const userAgent = options.userAgent ?? 'bulwark-cli';

  function request(method: string, path: string, opts: RequestOptions = {}): Promise<ApiResponse> {
    const target = new URL(baseUrl + API_PREFIX + path);
    for (const [k, v] of Object.entries(opts.query ?? {})) {
      if (v !== undefined) target.searchParams.set(k, String(v));
    }
    const payload = opts.body === undefined ? undefined : Buffer.from(JSON.stringify(opts.body));
    const headers: Record<string, string> = {
      accept: 'application/json, application/problem+json',
      ...(options.token !== undefined ? { authorization: `Bearer ${options.token}` } : {}),
      'user-agent': userAgent,
    };
    if (payload !== undefined) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = String(payload.length);
    }

    return new Promise<ApiResponse>((resolve, reject) => {
      const req = httpsRequest(target, { method, headers, agent, timeout: timeoutMs }, (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > MAX_BODY_BYTES) {
            req.destroy(new Error(`response larger than ${MAX_BODY_BYTES} bytes`));
            return;
          }
          chunks.push(chunk);
        });
        res.on('error', (err) => reject(toConnectionError(err, target)));
        res.on('end', () => {
          const status = res.statusCode ?? 0;
          const text = Buffer.concat(chunks).toString('utf8');
          const contentType = String(res.headers['content-type'] ?? '');
          let body: unknown;
          let parsed = text === '';
          if (text !== '' && /json/i.test(contentType)) {
            try {
              body = JSON.parse(text);
              parsed = true;
            } catch {
              parsed = false;
            }
          }
          if (status >= 200 && status < 300 && parsed) {
            resolve({ status, headers: res.headers, body });
            return;
          }
          reject(new ApiError(toProblem(status, body, text, contentType)));
        });
      });
      req.on('timeout', () => {
        req.destroy(Object.assign(new Error(`no answer within ${timeoutMs} ms`), { code: 'ETIMEDOUT' }));
      });
      req.on('error', (err) => reject(toConnectionError(err, target)));
      req.end(payload);
    });
  }

  async function call<T>(method: string, path: string, opts?: RequestOptions): Promise<T> {
    return (await request(method, path, opts)).body as T;
  }

  const id = encodeURIComponent;
  return {
    baseUrl,
    request,
    ops: createOperations({ request }),
    whoami: () => call('GET', '/whoami'),
    createDevice: (input) => call('POST', '/devices', { body: input }),
    listDevices: (query = {}) =>
      call('GET', '/devices', { query: { limit: query.limit, cursor: query.cursor } }),
    getDevice: (deviceId) => call('GET', `/devices/${id(deviceId)}`),
    disableDevice: (deviceId) => call('POST', `/devices/${id(deviceId)}/disable`),
    enableDevice: (deviceId) => call('POST', `/devices/${id(deviceId)}/enable`),
    deleteDevice: async (deviceId) => {
      await request('DELETE', `/devices/${id(deviceId)}`);
    },
    issueCertificate: (deviceId, csr) =>
      call('POST', `/devices/${id(deviceId)}/certificates`, { body: { csr } }),
    listCertificates: (deviceId) => call('GET', `/devices/${id(deviceId)}/certificates`),
    revokeDevice: (deviceId, opts = {}) =>
      call('POST', `/devices/${id(deviceId)}/revoke`, { body: reasonBody(opts.reason) }),
    revokeCertificate: (serial, opts = {}) =>
      call('POST', `/certificates/${id(serial)}/revoke`, { body: reasonBody(opts.reason) }),
    listTelemetry: (deviceId, q = {}) =>
      call('GET', `/devices/${id(deviceId)}/telemetry`, {
        query: { from: q.from, to: q.to, stream: q.stream, limit: q.limit, cursor: q.cursor, order: q.order },
      }),
    listAudit: (q = {}) =>
      call('GET', '/audit', { query: { limit: q.limit, cursor: q.cursor, action: q.action } }),
    listPolicies: () => call('GET', '/policies'),
    getPolicy: (p) => call('GET', `/policies/${id(p)}`),
    createPolicy: (input) => call('POST', '/policies', { body: input }),
    updatePolicy: (p, input) => call('PUT', `/policies/${id(p)}`, { body: input }),
    deletePolicy: async (p) => {
      await request('DELETE', `/policies/${id(p)}`);
    },
    policyVersions: (p) => call('GET', `/policies/${id(p)}/versions`),
    attachPolicy: (p, target) => call('POST', `/policies/${id(p)}/attach`, { body: target }),
    detachPolicy: (p, target) => call('POST', `/policies/${id(p)}/detach`, { body: target }),
    explain: (input) => call('POST', '/policies/explain', { body: input }),
    lintPolicy: (input) => call('POST', '/policies/lint', { body: input }),
    lintStoredPolicy: (p) => call('GET', `/policies/${id(p)}/lint`),
    diffPolicy: (p, input) => call('POST', `/policies/${id(p)}/diff`, { body: input }),
    // Fleet paths contain '/': they travel URL-encoded in one path segment.
    createFleet: (input) => call('POST', '/fleets', { body: input }),
    listFleets: (q = {}) =>
      call('GET', '/fleets', { query: { limit: q.limit, cursor: q.cursor, under: q.under } }),
    getFleet: (path) => call('GET', `/fleets/${id(path)}`),
    deleteFleet: async (path) => {
      await request('DELETE', `/fleets/${id(path)}`);
    },
    moveDevice: (deviceId, fleet) => call('POST', `/devices/${id(deviceId)}/move`, { body: { fleet } }),
    createGroup: (input) => call('POST', '/groups', { body: input }),
    listGroups: () => call('GET', '/groups'),
    getGroup: (name) => call('GET', `/groups/${id(name)}`),
    updateGroup: (name, input) => call('PATCH', `/groups/${id(name)}`, { body: input }),
    deleteGroup: async (name) => {
      await request('DELETE', `/groups/${id(name)}`);
    },
    addGroupMembers: (name, deviceIds) =>
      call('POST', `/groups/${id(name)}/members`, { body: { deviceIds } }),
    removeGroupMembers: (name, deviceIds) =>
      call('POST', `/groups/${id(name)}/members/remove`, { body: { deviceIds } }),
    listGroupMembers: (name, q = {}) =>
      call('GET', `/groups/${id(name)}/members`, { query: { limit: q.limit, cursor: q.cursor } }),
    close: () => agent.destroy(),
  };
}

function reasonBody(reason: string | undefined): { reason?: string } {
  return reason === undefined ? {} : { reason };
}

function toProblem(status: number, body: unknown, text: string, contentType: string): ApiProblem {
  if (isRecord(body) && typeof body.title === 'string' && typeof body.code === 'string') {
    return {
      type: 'about:blank',
      ...body,
      status: typeof body.status === 'number' ? body.status : status,
    } as ApiProblem;
  }
  if (status >= 200 && status < 300) {
    return {
      type: 'about:blank',
      title: 'Unexpected response from server',
      status,
      code: 'ERR_CLIENT_BAD_RESPONSE',
      detail: `expected JSON, got ${contentType === '' ? 'no content type' : contentType}`,
    };
  }
  const snippet = text.trim().slice(0, 200);
  return {
    type: 'about:blank',
    title: `HTTP ${status}`,
    status,
    code: `HTTP_${status}`,
    ...(snippet === '' ? {} : { detail: snippet }),
  };
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const CA_HINT =
  'the server certificate is not signed by a CA this client trusts: does BULWARK_CA_FILE (or --ca-file) point to the platform CA?';

const TLS_TRUST_CODES = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_SIGNATURE_FAILURE',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'INVALID_CA',
]);

function toConnectionError(err: unknown, target: URL): ConnectionError {
  const e = err as NodeJS.ErrnoException;
  const code = typeof e.code === 'string' ? e.code : 'ECONNECTION';
  const origin = target.origin;
  let hint: string;
  if (TLS_TRUST_CODES.has(code)) hint = CA_HINT;
  else if (code === 'ERR_TLS_CERT_ALTNAME_INVALID')
    hint = `the server certificate is not issued for '${target.hostname}': use the host name in the certificate`;
  else if (code === 'CERT_HAS_EXPIRED' || code === 'CERT_NOT_YET_VALID')
    hint =
      'the server certificate is outside its validity period: check the clocks of this machine and the server';
  else if (code === 'ECONNREFUSED') hint = `is the server running and listening on ${origin}?`;
  else if (code === 'ENOTFOUND' || code === 'EAI_AGAIN')
    hint = `cannot resolve '${target.hostname}': check the URL`;
  else if (code === 'EPROTO' || /wrong version number|packet length too long/i.test(e.message))
    hint = `is ${origin} the platform's HTTPS port (default 8443)?`;
  else hint = 'is the server running? does BULWARK_CA_FILE point to the platform CA?';
  return new ConnectionError(`cannot reach ${origin}: ${e.message}`, code, hint, origin, err);
}
