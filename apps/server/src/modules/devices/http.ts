import { AppError, type HttpRoute } from '../../kernel/index.ts';
import { recordRouteAction, type AuditService } from '../audit/index.ts';
import type { PkiService, CertificateRecord } from '../pki/index.ts';
import { resourceName } from '../policy/index.ts';
import type { Device } from './model.ts';
import type { DeviceService } from './service.ts';

// Schemas are plain JSON schema objects; the HTTP transport turns them into validation and OpenAPI.
const idParam = {
  type: 'object',
  properties: {
    id: { type: 'string', minLength: 1, maxLength: 128, pattern: '^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$' },
  },
  required: ['id'],
};
const attributes = {
  type: 'object',
  additionalProperties: { type: 'string', maxLength: 256 },
  maxProperties: 64,
};
const certificateSummary = { $ref: 'CertificateSummary#' };
const device = {
  type: 'object',
  properties: {
    id: { type: 'string' },
    tenant: { type: 'string' },
    status: { type: 'string', enum: ['active', 'disabled'] },
    attributes,
    fleet: { type: ['string', 'null'] },
    createdAt: { type: 'string', format: 'date-time' },
    updatedAt: { type: 'string', format: 'date-time' },
  },
  required: ['id', 'tenant', 'status', 'attributes', 'createdAt', 'updatedAt'],
};
const deviceDetail = {
  ...device,
  properties: {
    ...device.properties,
    connected: { type: 'boolean' },
    groups: { type: 'array', items: { type: 'string' } },
    certificates: { type: 'array', items: certificateSummary },
  },
};
const fleetPath = { type: 'string', maxLength: 520 };
const reasonBody = {
  type: 'object',
  properties: {
    reason: {
      type: 'string',
      enum: [
        'unspecified',
        'keyCompromise',
        'affiliationChanged',
        'superseded',
        'cessationOfOperation',
        'privilegeWithdrawn',
      ],
    },
  },
  additionalProperties: false,
};

export const deviceJson = (d: Device) => ({
  id: d.id,
  tenant: d.tenant,
  status: d.status,
  attributes: d.attributes,
  fleet: d.fleet === '' ? null : d.fleet,
  createdAt: new Date(d.createdAt).toISOString(),
  updatedAt: new Date(d.updatedAt).toISOString(),
});

export const certificateJson = (c: CertificateRecord) => ({
  serial: c.serial,
  deviceId: c.deviceId,
  status: c.status,
  keyType: c.keyType,
  notBefore: new Date(c.notBefore).toISOString(),
  notAfter: new Date(c.notAfter).toISOString(),
  revokedAt: c.revokedAt === null ? null : new Date(c.revokedAt).toISOString(),
  fingerprint256: c.fingerprint256,
});

export interface DeviceRouteDeps {
  devices: DeviceService;
  pki: PkiService;
  audit: AuditService;
  isConnected(tenant: string, deviceId: string): boolean;
  deviceCertDays: number;
}

export function deviceRoutes(deps: DeviceRouteDeps): HttpRoute[] {
  const { devices, pki, audit } = deps;
  const deviceResource = (ctx: { principal: { tenant: string }; params: Record<string, string> }) =>
    resourceName(ctx.principal.tenant, 'device', ctx.params.id ?? '');
  const actorOf = (ctx: { principal: { type: 'user' | 'service'; id: string } }) => ({
    type: ctx.principal.type,
    id: ctx.principal.id,
  });
  return [
    {
      method: 'POST',
      url: '/devices',
      summary: 'Register a device',
      tags: ['devices'],
      action: 'devices:write',
      resource: (ctx) =>
        resourceName(ctx.principal.tenant, 'device', String((ctx.body as { id?: unknown })?.id ?? '')),
      schema: {
        body: {
          type: 'object',
          properties: { id: idParam.properties.id, attributes, fleet: fleetPath },
          required: ['id'],
          additionalProperties: false,
        },
        response: { 201: device },
      },
      status: 201,
      async handler(ctx) {
        const body = ctx.body as { id: string; attributes?: Record<string, string>; fleet?: string };
        const d = await devices.create(
          ctx.principal.tenant,
          body.id,
          body.attributes ?? {},
          body.fleet ?? '',
        );
        await recordRouteAction(audit, ctx, 'device.create', { type: 'device', id: d.id });
        return deviceJson(d);
      },
    },
    {
      method: 'GET',
      url: '/devices',
      summary: 'List devices (paged)',
      tags: ['devices'],
      action: 'devices:read',
      resource: (ctx) => resourceName(ctx.principal.tenant, 'device', '*'),
      schema: {
        querystring: {
          type: 'object',
          properties: {
            limit: { type: 'integer', minimum: 1, maximum: 1000 },
            cursor: { type: 'string', maxLength: 512 },
            fleet: fleetPath,
          },
          additionalProperties: false,
        },
        response: {
          200: {
            type: 'object',
            properties: { items: { type: 'array', items: device }, nextCursor: { type: ['string', 'null'] } },
            required: ['items', 'nextCursor'],
          },
        },
      },
      async handler(ctx) {
        const q = ctx.query as { limit?: number; cursor?: string; fleet?: string };
        const page = await devices.list(ctx.principal.tenant, {
          ...(q.fleet !== undefined ? { fleet: q.fleet } : {}),
          ...(q.limit !== undefined ? { limit: q.limit } : {}),
          ...(q.cursor !== undefined ? { cursor: q.cursor } : {}),
        });
        return { items: page.items.map(deviceJson), nextCursor: page.nextCursor };
      },
    },
    {
      method: 'GET',
      url: '/devices/:id',
      summary: 'Get a device with its certificates and connection state',
      tags: ['devices'],
      action: 'devices:read',
      resource: deviceResource,
      schema: { params: idParam, response: { 200: deviceDetail } },
      async handler(ctx) {
        const tenant = ctx.principal.tenant;
        const placed = await devices.placement(tenant, ctx.params.id ?? '');
        if (!placed) throw new AppError('ERR_DEVICE_NOT_FOUND', `Device ${ctx.params.id ?? ''} not found`);
        const d = placed.device;
        const certs = await pki.listCertificates({ tenantId: tenant, deviceId: d.id, limit: 100 });
        return {
          ...deviceJson(d),
          connected: deps.isConnected(tenant, d.id),
          groups: placed.groups,
          certificates: certs.items.map(certificateJson),
        };
      },
    },
    {
      method: 'PATCH',
      url: '/devices/:id',
      summary: 'Update attributes (merge patch: null removes one); dynamic groups and live policies follow',
      tags: ['devices'],
      action: 'devices:write',
      resource: deviceResource,
      schema: {
        params: idParam,
        body: {
          type: 'object',
          properties: {
            attributes: {
              type: 'object',
              additionalProperties: { type: ['string', 'null'], maxLength: 256 },
              maxProperties: 64,
            },
          },
          required: ['attributes'],
          additionalProperties: false,
        },
        response: { 200: device },
      },
      async handler(ctx) {
        const patch = (ctx.body as { attributes: Record<string, string | null> }).attributes;
        const d = await devices.updateAttributes(ctx.principal.tenant, ctx.params.id ?? '', patch);
        await recordRouteAction(
          audit,
          ctx,
          'device.update',
          { type: 'device', id: d.id },
          { attributes: patch },
        );
        return deviceJson(d);
      },
    },
    {
      method: 'POST',
      url: '/devices/:id/move',
      summary: "Move a device to another fleet (null: no fleet); its live session's policy follows",
      tags: ['devices'],
      action: 'devices:write',
      resource: deviceResource,
      schema: {
        params: idParam,
        body: {
          type: 'object',
          properties: { fleet: { type: ['string', 'null'], maxLength: 520 } },
          required: ['fleet'],
          additionalProperties: false,
        },
        response: { 200: device },
      },
      async handler(ctx) {
        const tenant = ctx.principal.tenant;
        const fleet = (ctx.body as { fleet: string | null }).fleet ?? '';
        const from = (await devices.get(tenant, ctx.params.id ?? '')).fleet;
        const d = await devices.move(tenant, ctx.params.id ?? '', fleet);
        await recordRouteAction(
          audit,
          ctx,
          'device.move',
          { type: 'device', id: d.id },
          { from: from || null, to: fleet || null },
        );
        return deviceJson(d);
      },
    },
    ...(['disable', 'enable'] as const).map((verb): HttpRoute => ({
      method: 'POST',
      url: `/devices/:id/${verb}`,
      summary: verb === 'disable' ? 'Disable a device (its sessions are dropped)' : 'Enable a device again',
      tags: ['devices'],
      action: 'devices:write',
      resource: deviceResource,
      schema: { params: idParam, response: { 200: device } },
      async handler(ctx) {
        const d = await devices[verb](ctx.principal.tenant, ctx.params.id ?? '');
        await audit.record({
          tenant: ctx.principal.tenant,
          actor: actorOf(ctx),
          action: `device.${verb}`,
          target: { type: 'device', id: d.id },
          outcome: 'success',
          source: ctx.sourceIp,
        });
        return deviceJson(d);
      },
    })),
    {
      method: 'DELETE',
      url: '/devices/:id',
      summary: 'Delete a device; its certificates are revoked',
      tags: ['devices'],
      action: 'devices:write',
      resource: deviceResource,
      schema: { params: idParam },
      status: 204,
      async handler(ctx) {
        const tenant = ctx.principal.tenant;
        const id = ctx.params.id ?? '';
        await devices.get(tenant, id);
        const revoked = await pki.revokeDeviceCertificates(tenant, id, 'cessationOfOperation');
        await devices.delete(tenant, id);
        await recordRouteAction(
          audit,
          ctx,
          'device.delete',
          { type: 'device', id },
          { revoked: revoked.map((c) => c.serial) },
        );
        return undefined;
      },
    },
    {
      method: 'POST',
      url: '/devices/:id/certificates',
      summary: 'Issue a device certificate from a CSR (the key never leaves the device)',
      tags: ['certificates'],
      action: 'certs:issue',
      resource: deviceResource,
      schema: {
        params: idParam,
        body: {
          type: 'object',
          properties: { csr: { type: 'string', minLength: 1, maxLength: 65536 } },
          required: ['csr'],
          additionalProperties: false,
        },
        response: {
          201: {
            type: 'object',
            properties: {
              serial: { type: 'string' },
              certificate: { type: 'string' },
              chain: { type: 'string' },
              ca: { type: 'string' },
              notBefore: { type: 'string', format: 'date-time' },
              notAfter: { type: 'string', format: 'date-time' },
              fingerprint256: { type: 'string' },
              keyType: { type: 'string' },
            },
            required: [
              'serial',
              'certificate',
              'chain',
              'ca',
              'notBefore',
              'notAfter',
              'fingerprint256',
              'keyType',
            ],
          },
        },
      },
      status: 201,
      async handler(ctx) {
        const tenant = ctx.principal.tenant;
        const id = ctx.params.id ?? '';
        const d = await devices.get(tenant, id);
        if (d.status !== 'active') {
          await audit.record({
            tenant,
            actor: actorOf(ctx),
            action: 'cert.issue',
            target: { type: 'device', id },
            outcome: 'denied',
            reason: 'device disabled',
            source: ctx.sourceIp,
          });
          throw new AppError('ERR_DEVICE_DISABLED');
        }
        let issued;
        try {
          issued = await pki.signDeviceCsr({
            tenantId: tenant,
            deviceId: id,
            csrPem: (ctx.body as { csr: string }).csr,
            validityDays: deps.deviceCertDays,
          });
        } catch (err) {
          await audit.record({
            tenant,
            actor: actorOf(ctx),
            action: 'cert.issue',
            target: { type: 'device', id },
            outcome: 'denied',
            reason: (err as { code?: string }).code ?? 'error',
            source: ctx.sourceIp,
          });
          throw err;
        }
        await audit.record({
          tenant,
          actor: actorOf(ctx),
          action: 'cert.issue',
          target: { type: 'certificate', id: issued.serial },
          outcome: 'success',
          source: ctx.sourceIp,
          details: {
            deviceId: id,
            keyType: issued.keyType,
            notAfter: new Date(issued.notAfter).toISOString(),
          },
        });
        return {
          serial: issued.serial,
          certificate: issued.certificatePem,
          chain: issued.chainPem,
          ca: issued.caPem,
          notBefore: new Date(issued.notBefore).toISOString(),
          notAfter: new Date(issued.notAfter).toISOString(),
          fingerprint256: issued.fingerprint256,
          keyType: issued.keyType,
        };
      },
    },
    {
      method: 'GET',
      url: '/devices/:id/certificates',
      summary: "List a device's certificates",
      tags: ['certificates'],
      action: 'certs:read',
      resource: deviceResource,
      schema: {
        params: idParam,
        response: {
          200: {
            type: 'object',
            properties: { items: { type: 'array', items: certificateSummary } },
            required: ['items'],
          },
        },
      },
      async handler(ctx) {
        const page = await pki.listCertificates({
          tenantId: ctx.principal.tenant,
          deviceId: ctx.params.id ?? '',
          limit: 500,
        });
        return { items: page.items.map(certificateJson) };
      },
    },
    {
      method: 'POST',
      url: '/devices/:id/revoke',
      summary: "Revoke all of a device's certificates; its live sessions are dropped at once",
      tags: ['certificates'],
      action: 'certs:revoke',
      resource: deviceResource,
      schema: {
        params: idParam,
        body: reasonBody,
        response: {
          200: {
            type: 'object',
            properties: { revoked: { type: 'array', items: { type: 'string' } } },
            required: ['revoked'],
          },
        },
      },
      async handler(ctx) {
        const tenant = ctx.principal.tenant;
        const id = ctx.params.id ?? '';
        await devices.get(tenant, id);
        const reason = (ctx.body as { reason?: string } | undefined)?.reason ?? 'unspecified';
        const revoked = await pki.revokeDeviceCertificates(tenant, id, reason as never);
        await recordRouteAction(
          audit,
          ctx,
          'cert.revoke',
          { type: 'device', id },
          { serials: revoked.map((c) => c.serial), reason },
        );
        return { revoked: revoked.map((c) => c.serial) };
      },
    },
    {
      method: 'POST',
      url: '/certificates/:serial/revoke',
      summary: 'Revoke one certificate',
      tags: ['certificates'],
      action: 'certs:revoke',
      resource: (ctx) => resourceName(ctx.principal.tenant, 'certificate', ctx.params.serial ?? ''),
      schema: {
        params: {
          type: 'object',
          properties: { serial: { type: 'string', pattern: '^[0-9a-fA-F]{1,64}$' } },
          required: ['serial'],
        },
        body: reasonBody,
        response: { 200: certificateSummary },
      },
      async handler(ctx) {
        const tenant = ctx.principal.tenant;
        const reason = (ctx.body as { reason?: string } | undefined)?.reason ?? 'unspecified';
        const cert = await pki.revokeCertificate(
          tenant,
          (ctx.params.serial ?? '').toLowerCase(),
          reason as never,
        );
        await recordRouteAction(
          audit,
          ctx,
          'cert.revoke',
          { type: 'certificate', id: cert.serial },
          { deviceId: cert.deviceId, reason },
        );
        return certificateJson(cert);
      },
    },
  ];
}
