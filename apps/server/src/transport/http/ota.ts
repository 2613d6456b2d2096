// Device-facing TUF repository on the HTTPS listener, outside /api/v1 and without bearer tokens:
//   GET /ota/<tenant>/metadata/{timestamp.json | <N>.root.json | <N>.snapshot.json | <N>.targets.json}
//   GET /ota/<tenant>/targets/<dir>/<sha256>.<name>          (consistent snapshots; Range supported)
// Only devices: the client certificate must be one the platform issued (valid, not revoked, naming a
// device of <tenant>), and the policy engine must allow `ota:download` on `bulwark:<tenant>:ota/<path>`.
// What is served is public-key verified by the device anyway (TUF); this check keeps the artifacts of a
// tenant to its own devices.
import type { TLSSocket } from 'node:tls';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { AppError, isAppError, type Logger } from '../../kernel/index.ts';
import type { AuditService } from '../../modules/audit/index.ts';
import type { DeviceService } from '../../modules/devices/index.ts';
import type { RepositoryService } from '../../modules/ota/index.ts';
import type { PkiService } from '../../modules/pki/index.ts';
import { resourceName, type PolicyService, type Principal } from '../../modules/policy/index.ts';
import { problem, sendProblem } from './errors.ts';

export interface OtaEndpointDeps {
  repository: RepositoryService;
  pki: PkiService;
  devices: DeviceService;
  policy: PolicyService;
  audit: AuditService;
  logger: Logger;
}

const TENANT = /^[a-z0-9][a-z0-9-]{0,62}$/;

/** RFC 9110 §14.1.2 byte ranges: one range only; undefined when there is no Range header. */
export function parseRange(
  header: string | undefined,
  size: number,
): { start: number; end: number } | undefined {
  if (header === undefined) return undefined;
  const m = /^bytes=(\d{0,15})-(\d{0,15})$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === ''))
    throw new AppError('ERR_OTA_RANGE', 'one byte range, e.g. bytes=1024-');
  let start: number;
  let end: number;
  if (m[1] === '') {
    const suffix = Number(m[2]);
    if (suffix === 0) throw new AppError('ERR_OTA_RANGE');
    start = Math.max(0, size - suffix);
    end = size - 1;
  } else {
    start = Number(m[1]);
    end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
    if (end < start) throw new AppError('ERR_OTA_RANGE');
  }
  if (start >= size) throw new AppError('ERR_OTA_RANGE', `the file has ${size} bytes`);
  return { start, end };
}

export async function registerOtaEndpoints(app: FastifyInstance, deps: OtaEndpointDeps): Promise<void> {
  const { repository, pki, devices, policy, audit, logger } = deps;

  const fail = (reply: FastifyReply, req: FastifyRequest, err: unknown, size?: number) => {
    if (!isAppError(err)) {
      logger.error({ err: String((err as Error)?.stack ?? err), url: req.url }, 'OTA request failed');
      return sendProblem(reply, problem('ERR_INTERNAL', { requestId: req.id }));
    }
    if (err.kind === 'internal') logger.error({ code: err.code, detail: err.detail }, err.message);
    const p = problem(err.code, {
      requestId: req.id,
      instance: req.url.split('?')[0] ?? '',
      ...(err.kind !== 'internal' && err.message !== err.code ? { detail: err.message } : {}),
    });
    if (err.code === 'ERR_OTA_RANGE') {
      if (size !== undefined) reply.header('content-range', `bytes */${size}`);
      return sendProblem(reply, { ...p, status: 416 });
    }
    return sendProblem(reply, p);
  };

  /** The device the client certificate names, allowed by policy to download `path`. */
  const authorize = async (req: FastifyRequest, tenant: string, path: string) => {
    const socket = req.raw.socket as TLSSocket;
    const cert =
      typeof socket.getPeerX509Certificate === 'function' ? socket.getPeerX509Certificate() : undefined;
    const denied = (reason: string, deviceId?: string) =>
      audit.recordLater({
        tenant: TENANT.test(tenant) ? tenant : null,
        actor: deviceId ? { type: 'device', id: deviceId } : { type: 'anonymous', id: req.ip },
        action: 'ota.download',
        target: { type: 'ota', id: path.slice(0, 256) },
        outcome: 'denied',
        reason,
        source: req.ip,
      });
    if (!cert) {
      denied('no client certificate');
      throw new AppError('ERR_OTA_CLIENT_CERT');
    }
    let identity;
    try {
      identity = pki.identifyClient(cert);
    } catch (err) {
      denied(isAppError(err) ? err.message : 'certificate not accepted');
      throw new AppError('ERR_OTA_CLIENT_CERT', isAppError(err) ? err.message : undefined);
    }
    if (identity.tenantId !== tenant) {
      denied(`device of tenant ${identity.tenantId}`, identity.deviceId);
      throw new AppError('ERR_POLICY_DENIED', 'this repository belongs to another tenant');
    }
    const placed = await devices.placement(tenant, identity.deviceId);
    if (!placed || placed.device.status !== 'active') {
      denied(placed ? 'device disabled' : 'device not registered', identity.deviceId);
      throw new AppError(
        'ERR_OTA_CLIENT_CERT',
        placed ? 'the device is disabled' : 'the device is not registered',
      );
    }
    const principal: Principal = {
      type: 'device',
      id: identity.deviceId,
      tenant,
      attributes: placed.device.attributes,
      fleet: placed.device.fleet,
      groups: placed.groups,
    };
    const resource = resourceName(tenant, 'ota', path);
    const decision = policy.authorize(principal, 'ota:download', resource, {
      sourceIp: req.ip,
      cert: { serial: identity.serial, fingerprint256: identity.fingerprint256 },
    });
    if (!decision.allowed) {
      denied('policy denies ota:download', identity.deviceId);
      throw new AppError('ERR_POLICY_DENIED', `ota:download on ${resource} is not allowed`);
    }
    return identity;
  };

  app.get<{ Params: { tenant: string; file: string } }>(
    '/ota/:tenant/metadata/:file',
    { schema: { hide: true } },
    async (req, reply) => {
      try {
        const { tenant, file } = req.params;
        if (!TENANT.test(tenant)) throw new AppError('ERR_OTA_NOT_FOUND');
        await authorize(req, tenant, `metadata/${file}`);
        const body = await repository.metadataFile(tenant, file);
        return reply.header('content-type', 'application/json').send(body);
      } catch (err) {
        return fail(reply, req, err);
      }
    },
  );

  app.get<{ Params: { tenant: string; '*': string } }>(
    '/ota/:tenant/targets/*',
    { schema: { hide: true } },
    async (req, reply) => {
      let size: number | undefined;
      try {
        const { tenant } = req.params;
        const path = req.params['*'];
        if (!TENANT.test(tenant) || path.length > 512) throw new AppError('ERR_OTA_NOT_FOUND');
        const identity = await authorize(req, tenant, `targets/${path}`);
        const target = await repository.targetFile(tenant, path);
        size = target.size;
        const range = parseRange(req.headers.range, target.size);
        reply
          .header('content-type', 'application/octet-stream')
          .header('accept-ranges', 'bytes')
          // Consistent-snapshot paths name the content, so the bytes behind a URL never change.
          .header('etag', `"${target.sha256}"`);
        if (!range) {
          audit.recordLater({
            tenant,
            actor: { type: 'device', id: identity.deviceId },
            action: 'ota.download',
            target: { type: 'release', id: target.release.id },
            outcome: 'success',
            source: req.ip,
            details: { path: target.release.targetPath },
          });
          reply.header('content-length', String(target.size));
          return reply.send(repository.blobs.get(target.sha256));
        }
        reply
          .status(206)
          .header('content-range', `bytes ${range.start}-${range.end}/${target.size}`)
          .header('content-length', String(range.end - range.start + 1));
        return reply.send(repository.blobs.get(target.sha256, range));
      } catch (err) {
        return fail(reply, req, err, size);
      }
    },
  );
}
