// Device-facing PKI endpoints on the HTTPS listener, outside /api/v1 and without bearer tokens:
//   EST (RFC 7030) under /.well-known/est[/<tenant>]/{cacerts,simpleenroll,simplereenroll,csrattrs}
//   OCSP (RFC 6960) at /pki/ocsp (POST, and GET with the base64 request in the path)
// EST answers in its own formats: base64 PKCS#7 / CsrAttrs bodies, and plain-text errors that carry
// our error code. Client certificates are requested by the TLS server but not verified by it
// (rejectUnauthorized: false): the EST service decides what a presented certificate is worth.
import { X509Certificate } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { errorCatalog, httpStatusByKind } from '@bulwark/protocol';
import { AppError, isAppError, type Logger } from '../../kernel/index.ts';
import type { EstAuth, EstService } from '../../modules/est/index.ts';
import type { PkiService } from '../../modules/pki/index.ts';

export interface PkiEndpointDeps {
  est: EstService;
  pki: PkiService;
  /** The tenant of `/.well-known/est/...` without a label. */
  defaultTenant: string;
  logger: Logger;
}

const LABEL = /^[a-z0-9][a-z0-9-]{0,62}$/;
const MAX_BODY = 64 * 1024;
const MAX_CHAIN = 5;

/** RFC 2045 §6.8: base64 in lines of at most 76 characters; we use 64, like PEM. */
function mimeBase64(b64: string): string {
  return b64.replace(/(.{64})/g, '$1\r\n').replace(/\r\n$/, '') + '\r\n';
}

function peerCertificates(req: FastifyRequest): { cert?: X509Certificate; chain: X509Certificate[] } {
  const socket = req.raw.socket as TLSSocket;
  if (typeof socket.getPeerCertificate !== 'function') return { chain: [] };
  // getPeerCertificate(true) first and only: after getPeerX509Certificate() node no longer links
  // the issuer certificates the client sent (observed on Node 24).
  type Peer = { raw?: Buffer; issuerCertificate?: Peer };
  const leaf = socket.getPeerCertificate(true) as Peer | undefined;
  if (!leaf?.raw) return { chain: [] };
  const cert = new X509Certificate(leaf.raw);
  // The certificates the client sent after its own (intermediates of a manufacturer CA).
  const chain: X509Certificate[] = [];
  let node: Peer = leaf;
  for (let i = 0; i < MAX_CHAIN; i++) {
    const next = node.issuerCertificate;
    if (!next || next === node || !next.raw) break;
    try {
      chain.push(new X509Certificate(next.raw));
    } catch {
      break;
    }
    node = next;
  }
  return { cert, chain };
}

function basicAuth(req: FastifyRequest): { username: string; password: string } | undefined {
  const m = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(req.headers.authorization ?? '');
  if (!m?.[1]) return undefined;
  const text = Buffer.from(m[1], 'base64').toString('utf8');
  const i = text.indexOf(':');
  if (i < 0) return undefined;
  return { username: text.slice(0, i), password: text.slice(i + 1) };
}

function sendError(reply: FastifyReply, err: unknown, logger: Logger): FastifyReply {
  if (!isAppError(err)) {
    logger.error({ err: String((err as Error)?.stack ?? err) }, 'EST request failed');
    return reply
      .status(500)
      .header('content-type', 'text/plain; charset=utf-8')
      .send('ERR_INTERNAL: Internal error\n');
  }
  const status =
    err.code === 'ERR_EST_CONTENT_TYPE'
      ? 415
      : err.kind === 'conflict'
        ? 403
        : err.kind === 'internal'
          ? 500
          : httpStatusByKind[err.kind];
  if (err.kind === 'internal') logger.error({ code: err.code, detail: err.detail }, err.message);
  if (status === 401) reply.header('www-authenticate', 'Basic realm="bulwark-est", charset="UTF-8"');
  if (status === 429) reply.header('retry-after', '60');
  // RFC 7030 §4.2.3: a human-readable error; the stable code comes first so scripts can match it.
  const message = err.kind === 'internal' ? errorCatalog[err.code].title : err.message;
  return reply
    .status(status)
    .header('content-type', 'text/plain; charset=utf-8')
    .send(`${err.code}: ${message}\n`);
}

function csrBody(req: FastifyRequest): string {
  const type = String(req.headers['content-type'] ?? '')
    .split(';')[0]
    ?.trim()
    .toLowerCase();
  if (type !== 'application/pkcs10') throw new AppError('ERR_EST_CONTENT_TYPE');
  const body = req.body;
  return Buffer.isBuffer(body) ? body.toString('latin1') : typeof body === 'string' ? body : '';
}

export async function registerPkiEndpoints(app: FastifyInstance, deps: PkiEndpointDeps): Promise<void> {
  const { est, pki, logger } = deps;
  await app.register(async (scope) => {
    // Raw bodies, whatever the content type: EST and OCSP check their media types themselves.
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: MAX_BODY }, (_req, body, done) =>
      done(null, body),
    );

    const tenantOf = async (
      req: FastifyRequest<{ Params: { label?: string } }>,
    ): Promise<string | undefined> => {
      const label = req.params.label ?? deps.defaultTenant;
      if (!LABEL.test(label) || !(await est.tenantExists(label))) return undefined;
      return label;
    };
    const unknownLabel = (reply: FastifyReply) =>
      reply
        .status(404)
        .header('content-type', 'text/plain; charset=utf-8')
        .send(`ERR_EST_TENANT_NOT_FOUND: ${errorCatalog.ERR_EST_TENANT_NOT_FOUND.title}\n`);

    for (const prefix of ['/.well-known/est', '/.well-known/est/:label']) {
      // RFC 7030 §4.1: the CA certificates a client should trust, certs-only PKCS#7.
      scope.get<{ Params: { label?: string } }>(
        `${prefix}/cacerts`,
        { schema: { hide: true } },
        async (req, reply) => {
          const tenant = await tenantOf(req);
          if (!tenant) return unknownLabel(reply);
          try {
            const p7 = await est.caCerts(tenant);
            return reply
              .header('content-type', 'application/pkcs7-mime')
              .header('content-transfer-encoding', 'base64')
              .send(mimeBase64(p7));
          } catch (err) {
            return sendError(reply, err, logger);
          }
        },
      );

      // RFC 7030 §4.5: CSR attributes.
      scope.get<{ Params: { label?: string } }>(
        `${prefix}/csrattrs`,
        { schema: { hide: true } },
        async (req, reply) => {
          const tenant = await tenantOf(req);
          if (!tenant) return unknownLabel(reply);
          return reply
            .header('content-type', 'application/csrattrs')
            .header('content-transfer-encoding', 'base64')
            .send(mimeBase64(est.csrAttrs()));
        },
      );

      for (const op of ['simpleenroll', 'simplereenroll'] as const) {
        scope.post<{ Params: { label?: string } }>(
          `${prefix}/${op}`,
          { schema: { hide: true } },
          async (req, reply) => {
            const tenant = await tenantOf(req);
            if (!tenant) return unknownLabel(reply);
            try {
              const csr = csrBody(req);
              const { cert, chain } = peerCertificates(req);
              const basic = basicAuth(req);
              const auth: EstAuth = {
                tenantId: tenant,
                source: req.ip,
                ...(basic ? { basic } : {}),
                ...(cert ? { clientCert: cert, clientChain: chain } : {}),
              };
              const result =
                op === 'simpleenroll' ? await est.enroll(auth, csr) : await est.reenroll(auth, csr);
              if (result.status === 'pending') {
                // RFC 7030 §4.2.3: accepted for manual approval; the client retries after Retry-After.
                return reply
                  .status(202)
                  .header('retry-after', String(result.retryAfterSeconds))
                  .header('content-type', 'text/plain; charset=utf-8')
                  .send(`pending approval (request ${result.requestId})\n`);
              }
              return reply
                .header('content-type', 'application/pkcs7-mime; smime-type=certs-only')
                .header('content-transfer-encoding', 'base64')
                .send(mimeBase64(result.pkcs7));
            } catch (err) {
              return sendError(reply, err, logger);
            }
          },
        );
      }
    }

    // RFC 6960 Appendix A: POST with the DER request, or GET with it base64 (then URL-encoded) in the path.
    const ocspReply = async (reply: FastifyReply, der: Uint8Array) =>
      reply
        .header('content-type', 'application/ocsp-response')
        .send(Buffer.from(await pki.ocspResponse(der)));
    scope.post('/pki/ocsp', { schema: { hide: true } }, async (req, reply) => {
      const type = String(req.headers['content-type'] ?? '')
        .split(';')[0]
        ?.trim()
        .toLowerCase();
      if (type !== 'application/ocsp-request') {
        return reply
          .status(415)
          .header('content-type', 'text/plain; charset=utf-8')
          .send('ERR_OCSP_REQUEST_INVALID\n');
      }
      const body = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
      return ocspReply(reply, new Uint8Array(body));
    });
    scope.get('/pki/ocsp/*', { schema: { hide: true } }, async (req, reply) => {
      const raw = req.url.slice(req.url.indexOf('/pki/ocsp/') + '/pki/ocsp/'.length).split('?')[0] ?? '';
      let der: Uint8Array;
      try {
        const b64 = decodeURIComponent(raw);
        der = /^[A-Za-z0-9+/=_-]*$/.test(b64) ? new Uint8Array(Buffer.from(b64, 'base64')) : new Uint8Array();
      } catch {
        der = new Uint8Array();
      }
      return ocspReply(reply, der);
    });
  });
}
