// REST routes of the PKI: certificate inventory, the platform's CAs (import, revoke) and the
// organisation's external CAs (registration with proof of possession, disable, remove).
import type { HttpRoute, RouteContext } from '../../kernel/index.ts';
import { recordRouteAction, type AuditService } from '../audit/index.ts';
import { resourceName } from '../policy/index.ts';
import type { CertificateRecord, ExternalCaRecord, RevocationReason } from './model.ts';
import { revocationReasons } from './model.ts';
import type { CaSummary, PkiService } from './service.ts';

export interface PkiRouteDeps {
  pki: PkiService;
  audit: AuditService;
  now(): number;
  /** Throws when the fleet does not exist (external CAs map to an existing fleet, or '' for none). */
  requireFleet(tenant: string, fleet: string): Promise<void>;
}

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

export const certificateDetailJson = (c: CertificateRecord) => ({
  serial: c.serial,
  deviceId: c.deviceId,
  kind: c.kind,
  status: c.status,
  keyType: c.keyType,
  caId: c.caId,
  fleet: c.fleet,
  enrolledVia: c.enrolledVia,
  subject: c.subject,
  notBefore: iso(c.notBefore),
  notAfter: iso(c.notAfter),
  revokedAt: iso(c.revokedAt),
  revocationReason: c.revocationReason,
  fingerprint256: c.fingerprint256,
});

const caJson = (c: CaSummary) => ({
  id: c.id,
  kind: c.kind,
  tenant: c.tenantId,
  subject: c.subject,
  serial: c.serial,
  status: c.status,
  keyOffline: c.keyOffline,
  notBefore: iso(c.notBefore),
  notAfter: iso(c.notAfter),
  certificate: c.certPem,
});

const externalJson = (c: ExternalCaRecord) => ({
  id: c.id,
  kind: 'external',
  name: c.name,
  subject: c.subject,
  fingerprint256: c.fingerprint256,
  fleet: c.fleet,
  deviceIdFrom: c.deviceIdFrom,
  approval: c.approval,
  status: c.status,
  notBefore: iso(c.notBefore),
  notAfter: iso(c.notAfter),
  createdAt: iso(c.createdAt),
  updatedAt: iso(c.updatedAt),
  certificate: c.certPem,
});

const nullableString = { type: ['string', 'null'] };
const certificateSchema = {
  type: 'object',
  properties: {
    serial: { type: 'string' },
    deviceId: nullableString,
    kind: { type: 'string' },
    status: { type: 'string', enum: ['active', 'revoked', 'expired'] },
    keyType: { type: 'string' },
    caId: { type: 'string' },
    fleet: nullableString,
    enrolledVia: nullableString,
    subject: { type: 'string' },
    notBefore: { type: 'string', format: 'date-time' },
    notAfter: { type: 'string', format: 'date-time' },
    revokedAt: nullableString,
    revocationReason: nullableString,
    fingerprint256: { type: 'string' },
  },
  required: ['serial', 'status', 'keyType', 'caId', 'notAfter', 'fingerprint256'],
};
const caSchema = {
  type: 'object',
  properties: {
    id: { type: 'string' },
    kind: { type: 'string' },
    tenant: nullableString,
    subject: { type: 'string' },
    serial: { type: 'string' },
    status: { type: 'string' },
    keyOffline: { type: 'boolean' },
    notBefore: { type: 'string' },
    notAfter: { type: 'string' },
    certificate: { type: 'string' },
  },
  required: ['id', 'kind', 'subject', 'status', 'notAfter'],
};
const externalSchema = {
  type: 'object',
  properties: {
    id: { type: 'string' },
    kind: { type: 'string' },
    name: { type: 'string' },
    subject: { type: 'string' },
    fingerprint256: { type: 'string' },
    fleet: { type: 'string' },
    deviceIdFrom: { type: 'string', enum: ['cn', 'serialNumber'] },
    approval: { type: 'boolean' },
    status: { type: 'string', enum: ['active', 'disabled'] },
    notBefore: { type: 'string' },
    notAfter: { type: 'string' },
    createdAt: { type: 'string' },
    updatedAt: { type: 'string' },
    certificate: { type: 'string' },
  },
  required: ['id', 'name', 'subject', 'fleet', 'status', 'notAfter'],
};
const fleetString = { type: 'string', maxLength: 512 };
const pem = { type: 'string', minLength: 1, maxLength: 65536 };
const reason = { type: 'string', enum: [...revocationReasons] };
const extIdParam = {
  type: 'object',
  properties: { id: { type: 'string', pattern: '^ext_[A-Za-z0-9_-]{1,64}$' } },
  required: ['id'],
};

export function pkiRoutes(deps: PkiRouteDeps): HttpRoute[] {
  const { pki, audit } = deps;
  const record = (
    ctx: RouteContext,
    action: string,
    target: { type: string; id: string },
    details?: Record<string, unknown>,
  ) => recordRouteAction(audit, ctx, action, target, details);
  const caResource = (ctx: RouteContext) => resourceName(ctx.principal.tenant, 'ca', ctx.params.id ?? '*');

  const revokeIssued = async (ctx: RouteContext, id: string, revoke: boolean | undefined) =>
    revoke
      ? (await pki.revokeEnrolledVia(ctx.principal.tenant, `ca:${id}`, 'privilegeWithdrawn')).map(
          (c) => c.serial,
        )
      : [];

  return [
    {
      method: 'GET',
      url: '/certificates',
      summary: 'List certificates by device, fleet or CA, with status, expiry and key type',
      tags: ['certificates'],
      action: 'certs:read',
      resource: (ctx) => resourceName(ctx.principal.tenant, 'certificate', '*'),
      schema: {
        querystring: {
          type: 'object',
          properties: {
            deviceId: { type: 'string', maxLength: 128 },
            fleet: fleetString,
            ca: { type: 'string', maxLength: 128 },
            status: { type: 'string', enum: ['active', 'revoked', 'expired'] },
            keyType: { type: 'string', maxLength: 16 },
            expiringWithinDays: { type: 'integer', minimum: 0, maximum: 3650 },
            limit: { type: 'integer', minimum: 1, maximum: 500 },
            cursor: { type: 'string', maxLength: 512 },
          },
          additionalProperties: false,
        },
        response: {
          200: {
            type: 'object',
            properties: {
              items: { type: 'array', items: certificateSchema },
              nextCursor: nullableString,
            },
            required: ['items', 'nextCursor'],
          },
        },
      },
      async handler(ctx) {
        const q = ctx.query as {
          deviceId?: string;
          fleet?: string;
          ca?: string;
          status?: 'active' | 'revoked' | 'expired';
          keyType?: string;
          expiringWithinDays?: number;
          limit?: number;
          cursor?: string;
        };
        const expiring = q.expiringWithinDays;
        const page = await pki.listCertificates({
          tenantId: ctx.principal.tenant,
          ...(q.deviceId !== undefined ? { deviceId: q.deviceId } : {}),
          ...(q.fleet !== undefined ? { fleet: q.fleet } : {}),
          ...(q.ca !== undefined ? { caId: q.ca } : {}),
          ...(q.keyType !== undefined ? { keyType: q.keyType } : {}),
          // Expiring soon means still in use: revoked and already expired certificates are left out.
          ...(q.status !== undefined
            ? { status: q.status }
            : expiring !== undefined
              ? { status: 'active' }
              : {}),
          ...(expiring !== undefined ? { expiringBefore: deps.now() + expiring * 86_400_000 } : {}),
          ...(q.limit !== undefined ? { limit: q.limit } : {}),
          ...(q.cursor !== undefined ? { cursor: q.cursor } : {}),
        });
        return { items: page.items.map(certificateDetailJson), nextCursor: page.nextCursor };
      },
    },
    {
      method: 'GET',
      url: '/cas',
      summary: "The platform's CAs (root, platform, the tenant's issuing CAs) and the tenant's external CAs",
      tags: ['cas'],
      action: 'cas:read',
      resource: (ctx) => resourceName(ctx.principal.tenant, 'ca', '*'),
      schema: {
        response: {
          200: {
            type: 'object',
            properties: {
              items: { type: 'array', items: caSchema },
              external: { type: 'array', items: externalSchema },
            },
            required: ['items', 'external'],
          },
        },
      },
      async handler(ctx) {
        const t = ctx.principal.tenant;
        return {
          items: (await pki.listCas(t)).map(caJson),
          external: (await pki.listExternalCas(t)).map(externalJson),
        };
      },
    },
    {
      method: 'POST',
      url: '/cas/import',
      summary: 'Import an issuing CA signed elsewhere (the root stays offline); the key is sealed at once',
      tags: ['cas'],
      action: 'cas:write',
      resource: (ctx) => resourceName(ctx.principal.tenant, 'ca', 'import'),
      schema: {
        body: {
          type: 'object',
          properties: { certificate: pem, key: pem },
          required: ['certificate', 'key'],
          additionalProperties: false,
        },
        response: { 201: { type: 'object', properties: { items: { type: 'array', items: caSchema } } } },
      },
      status: 201,
      async handler(ctx) {
        const t = ctx.principal.tenant;
        const body = ctx.body as { certificate: string; key: string };
        await pki.importIssuingCa(t, body.certificate, body.key);
        const cas = await pki.listCas(t);
        const imported = cas.filter((c) => c.kind === 'issuing' && c.status === 'active');
        await record(ctx, 'ca.import', { type: 'ca', id: imported[imported.length - 1]?.id ?? '' });
        return { items: cas.map(caJson) };
      },
    },
    {
      method: 'POST',
      url: '/cas/:id/revoke',
      summary: 'Revoke a tenant issuing CA: every certificate it issued is revoked and its sessions dropped',
      tags: ['cas'],
      action: 'cas:write',
      resource: caResource,
      schema: {
        params: {
          type: 'object',
          properties: { id: { type: 'string', pattern: '^issuing:[a-z0-9-]{1,63}:[0-9]{1,6}$' } },
          required: ['id'],
        },
        body: {
          type: 'object',
          properties: { reason, replace: { type: 'boolean' } },
          additionalProperties: false,
        },
        response: {
          200: {
            type: 'object',
            properties: {
              revokedCertificates: { type: 'integer' },
              items: { type: 'array', items: caSchema },
            },
          },
        },
      },
      async handler(ctx) {
        const t = ctx.principal.tenant;
        const body = (ctx.body ?? {}) as { reason?: RevocationReason; replace?: boolean };
        const id = ctx.params.id ?? '';
        const r = await pki.revokeCa(t, id, body.reason, { replace: body.replace !== false });
        await record(ctx, 'ca.revoke', { type: 'ca', id }, { ...r, reason: body.reason ?? 'cACompromise' });
        return { ...r, items: (await pki.listCas(t)).map(caJson) };
      },
    },
    {
      method: 'POST',
      url: '/cas/external/registration-codes',
      summary: 'A one-time code (1 hour) to put as CN into the verification certificate of an external CA',
      tags: ['cas'],
      action: 'cas:write',
      resource: (ctx) => resourceName(ctx.principal.tenant, 'ca', 'external'),
      schema: {
        response: {
          201: {
            type: 'object',
            properties: { code: { type: 'string' }, expiresAt: { type: 'string' } },
            required: ['code', 'expiresAt'],
          },
        },
      },
      status: 201,
      async handler(ctx) {
        const r = await pki.createCaRegistrationCode(ctx.principal.tenant);
        return { code: r.code, expiresAt: iso(r.expiresAt) };
      },
    },
    {
      method: 'POST',
      url: '/cas/external',
      summary: "Register an external CA (the organisation's / a manufacturer's) with proof of possession",
      tags: ['cas'],
      action: 'cas:write',
      resource: (ctx) => resourceName(ctx.principal.tenant, 'ca', 'external'),
      schema: {
        body: {
          type: 'object',
          properties: {
            certificate: pem,
            verificationCertificate: pem,
            fleet: fleetString,
            name: { type: 'string', minLength: 1, maxLength: 128 },
            deviceIdFrom: { type: 'string', enum: ['cn', 'serialNumber'] },
            approval: { type: 'boolean' },
          },
          required: ['certificate', 'verificationCertificate'],
          additionalProperties: false,
        },
        response: { 201: externalSchema },
      },
      status: 201,
      async handler(ctx) {
        const b = ctx.body as {
          certificate: string;
          verificationCertificate: string;
          fleet?: string;
          name?: string;
          deviceIdFrom?: 'cn' | 'serialNumber';
          approval?: boolean;
        };
        await deps.requireFleet(ctx.principal.tenant, b.fleet ?? '');
        const ca = await pki.registerExternalCa({
          tenantId: ctx.principal.tenant,
          certPem: b.certificate,
          verificationCertPem: b.verificationCertificate,
          fleet: b.fleet ?? '',
          ...(b.name !== undefined ? { name: b.name } : {}),
          ...(b.deviceIdFrom !== undefined ? { deviceIdFrom: b.deviceIdFrom } : {}),
          ...(b.approval !== undefined ? { approval: b.approval } : {}),
        });
        await record(ctx, 'ca.register', { type: 'ca', id: ca.id }, { subject: ca.subject, fleet: ca.fleet });
        return externalJson(ca);
      },
    },
    {
      method: 'GET',
      url: '/cas/external/:id',
      summary: 'An external CA',
      tags: ['cas'],
      action: 'cas:read',
      resource: caResource,
      schema: { params: extIdParam, response: { 200: externalSchema } },
      async handler(ctx) {
        return externalJson(await pki.getExternalCa(ctx.principal.tenant, ctx.params.id ?? ''));
      },
    },
    ...(['disable', 'enable'] as const).map((verb): HttpRoute => ({
      method: 'POST',
      url: `/cas/external/:id/${verb}`,
      summary:
        verb === 'disable'
          ? 'Disable an external CA: its manufacturer certificates are refused at enrollment'
          : 'Enable an external CA again',
      tags: ['cas'],
      action: 'cas:write',
      resource: caResource,
      schema: {
        params: extIdParam,
        body: {
          type: 'object',
          properties: verb === 'disable' ? { revokeCertificates: { type: 'boolean' } } : {},
          additionalProperties: false,
        },
        response: {
          200: {
            type: 'object',
            properties: {
              ...externalSchema.properties,
              revoked: { type: 'array', items: { type: 'string' } },
            },
          },
        },
      },
      async handler(ctx) {
        const id = ctx.params.id ?? '';
        const ca = await pki.setExternalCaStatus(
          ctx.principal.tenant,
          id,
          verb === 'disable' ? 'disabled' : 'active',
        );
        const body = (ctx.body ?? {}) as { revokeCertificates?: boolean };
        const revoked = await revokeIssued(ctx, id, verb === 'disable' && body.revokeCertificates === true);
        await record(ctx, `ca.${verb}`, { type: 'ca', id }, { revoked });
        return { ...externalJson(ca), revoked };
      },
    })),
    {
      method: 'DELETE',
      url: '/cas/external/:id',
      summary:
        'Remove an external CA; with revokeCertificates=true also revoke the certificates of devices that enrolled through it',
      tags: ['cas'],
      action: 'cas:write',
      resource: caResource,
      schema: {
        params: extIdParam,
        querystring: {
          type: 'object',
          properties: { revokeCertificates: { type: 'boolean' } },
          additionalProperties: false,
        },
        response: {
          200: {
            type: 'object',
            properties: {
              removed: { type: 'string' },
              revoked: { type: 'array', items: { type: 'string' } },
            },
            required: ['removed', 'revoked'],
          },
        },
      },
      async handler(ctx) {
        const id = ctx.params.id ?? '';
        const q = ctx.query as { revokeCertificates?: boolean };
        const ca = await pki.getExternalCa(ctx.principal.tenant, id);
        const revoked = await revokeIssued(ctx, id, q.revokeCertificates === true);
        await pki.removeExternalCa(ctx.principal.tenant, id);
        await record(ctx, 'ca.remove', { type: 'ca', id }, { subject: ca.subject, revoked });
        return { removed: id, revoked };
      },
    },
  ];
}
