// Operator API for releases, the TUF repository (offline signing) and campaigns, under /api/v1.
import { AppError, type HttpRoute, type RouteContext } from '../../kernel/index.ts';
import { resourceName } from '../policy/index.ts';
import type { Assignment, Release } from './model.ts';
import type { CampaignService, CampaignView } from './campaigns.ts';
import { validateRelease, type Actor, type RepositoryService } from './repository.ts';

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

export const releaseJson = (r: Release) => ({
  id: r.id,
  name: r.name,
  version: r.version,
  kind: r.kind,
  targetPath: r.targetPath,
  sha256: r.sha256,
  size: r.size,
  hardware: r.hardware,
  hasSbom: r.sbom !== null,
  allowDowngrade: r.allowDowngrade,
  notes: r.notes,
  state: r.state,
  createdBy: r.createdBy,
  createdAt: iso(r.createdAt),
  publishedAt: iso(r.publishedAt),
});

export const campaignJson = (c: CampaignView) => ({
  id: c.id,
  name: c.name,
  release: c.release,
  target: c.target,
  plan: c.plan,
  state: c.state,
  stateReason: c.stateReason,
  wave: c.wave,
  waveCount: c.waveCount,
  waveSizes: c.waveSizes,
  approvedWave: c.approvedWave,
  total: c.total,
  excluded: c.excluded,
  devices: c.devices,
  currentWave: c.currentWave,
  createdBy: c.createdBy,
  createdAt: iso(c.createdAt),
  updatedAt: iso(c.updatedAt),
});

const assignmentJson = (a: Assignment) => ({
  deviceId: a.deviceId,
  wave: a.wave,
  state: a.state,
  reason: a.reason,
  fromVersion: a.fromVersion,
  version: a.version,
  health: a.health,
  progress: a.progress,
  notifiedAt: iso(a.notifiedAt),
  updatedAt: iso(a.updatedAt),
});

const uuidParam = {
  type: 'object',
  properties: { id: { type: 'string', minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9-]+$' } },
  required: ['id'],
};
const reasonBody = {
  type: 'object',
  properties: { reason: { type: 'string', maxLength: 256 } },
  additionalProperties: false,
};
const pageQuery = (extra: Record<string, object> = {}) => ({
  type: 'object',
  properties: {
    limit: { type: 'integer', minimum: 1, maximum: 1000 },
    cursor: { type: 'string', maxLength: 256 },
    ...extra,
  },
  additionalProperties: false,
});
const tufKey = {
  oneOf: [
    { type: 'string', pattern: '^[0-9a-f]{64}$' },
    {
      type: 'object',
      properties: {
        keytype: { const: 'ed25519' },
        scheme: { const: 'ed25519' },
        keyval: {
          type: 'object',
          properties: { public: { type: 'string', pattern: '^[0-9a-f]{64}$' } },
          required: ['public'],
        },
      },
      required: ['keytype', 'keyval'],
    },
  ],
};

const isStream = (v: unknown): v is AsyncIterable<Uint8Array> =>
  typeof v === 'object' && v !== null && Symbol.asyncIterator in v;

export function otaRoutes(deps: { repository: RepositoryService; campaigns: CampaignService }): HttpRoute[] {
  const { repository, campaigns } = deps;
  const actor = (ctx: RouteContext): Actor => ({ type: ctx.principal.type, id: ctx.principal.id });
  const release = (ctx: RouteContext) => resourceName(ctx.principal.tenant, 'release', ctx.params.id ?? '*');
  const campaign = (ctx: RouteContext) =>
    resourceName(ctx.principal.tenant, 'campaign', ctx.params.id ?? '*');
  const repo = (ctx: RouteContext) =>
    resourceName(ctx.principal.tenant, 'ota-repository', ctx.principal.tenant);
  const campaignAction = (
    verb: 'approve' | 'pause' | 'resume' | 'cancel',
    summary: string,
    run: (ctx: RouteContext) => Promise<CampaignView>,
  ): HttpRoute => ({
    method: 'POST',
    url: `/campaigns/:id/${verb}`,
    summary,
    tags: ['campaigns'],
    action: 'campaigns:write',
    resource: campaign,
    schema: { params: uuidParam, ...(verb === 'pause' || verb === 'cancel' ? { body: reasonBody } : {}) },
    handler: async (ctx) => campaignJson(await run(ctx)),
  });
  const reason = (ctx: RouteContext) => (ctx.body as { reason?: string } | undefined)?.reason;

  return [
    {
      method: 'POST',
      url: '/artifacts',
      summary:
        'Upload an artifact (application/octet-stream, streamed, hashed while it arrives, at most ota.maxArtifactBytes); returns its SHA-256',
      tags: ['releases'],
      action: 'releases:write',
      resource: release,
      status: 201,
      async handler(ctx) {
        if (!isStream(ctx.body)) throw new AppError('ERR_RELEASE_ARTIFACT_TYPE');
        return repository.uploadArtifact(ctx.principal.tenant, ctx.body);
      },
    },
    {
      method: 'POST',
      url: '/releases',
      summary:
        'Create a release from an uploaded artifact; it is listed in the next targets metadata, to be signed offline (bulwark release sign)',
      tags: ['releases'],
      action: 'releases:write',
      resource: release,
      status: 201,
      schema: {
        body: {
          type: 'object',
          properties: {
            name: { type: 'string' },
            version: { type: 'string' },
            kind: { type: 'string', enum: ['firmware', 'software'] },
            artifact: { type: 'string', description: 'SHA-256 from POST /artifacts' },
            hardware: { type: 'array', items: { type: 'string' } },
            sbom: { type: 'object', additionalProperties: true, description: 'CycloneDX JSON' },
            allowDowngrade: { type: 'boolean' },
            notes: { type: 'string' },
          },
          required: ['name', 'version', 'artifact', 'hardware'],
        },
      },
      async handler(ctx) {
        return releaseJson(
          await repository.createRelease(ctx.principal.tenant, actor(ctx), validateRelease(ctx.body)),
        );
      },
    },
    {
      method: 'GET',
      url: '/releases',
      summary: 'List releases, newest first',
      tags: ['releases'],
      action: 'releases:read',
      resource: release,
      schema: { querystring: pageQuery({ name: { type: 'string', maxLength: 64 } }) },
      async handler(ctx) {
        const q = ctx.query as { limit?: number; cursor?: string; name?: string };
        const before = q.cursor === undefined ? undefined : Number(q.cursor);
        if (before !== undefined && !Number.isSafeInteger(before))
          throw new AppError('ERR_VALIDATION', 'invalid cursor');
        const page = await repository.listReleases(ctx.principal.tenant, {
          ...(q.limit !== undefined ? { limit: q.limit } : {}),
          ...(before !== undefined ? { before } : {}),
          ...(q.name !== undefined ? { name: q.name } : {}),
        });
        return { items: page.items.map(releaseJson), nextCursor: page.nextCursor };
      },
    },
    {
      method: 'GET',
      url: '/releases/:id',
      summary: 'A release',
      tags: ['releases'],
      action: 'releases:read',
      resource: release,
      schema: { params: uuidParam },
      handler: async (ctx) =>
        releaseJson(await repository.getRelease(ctx.principal.tenant, ctx.params.id ?? '')),
    },
    {
      method: 'GET',
      url: '/releases/:id/sbom',
      summary: "A release's SBOM (CycloneDX JSON)",
      tags: ['releases'],
      action: 'releases:read',
      resource: release,
      schema: { params: uuidParam },
      async handler(ctx) {
        const r = await repository.getRelease(ctx.principal.tenant, ctx.params.id ?? '');
        if (!r.sbom) throw new AppError('ERR_RELEASE_NOT_FOUND', 'This release has no SBOM');
        return r.sbom;
      },
    },
    {
      method: 'GET',
      url: '/ota/repository',
      summary:
        "The tenant's TUF repository: role versions and expiry, online keys, metadata waiting for signatures",
      tags: ['releases'],
      action: 'releases:read',
      resource: repo,
      handler: (ctx) => repository.status(ctx.principal.tenant),
    },
    {
      method: 'POST',
      url: '/ota/repository/root',
      summary:
        'Prepare the first (or next) root metadata from offline Ed25519 public keys; it is published once signed by the root keys',
      tags: ['releases'],
      action: 'releases:write',
      resource: repo,
      schema: {
        body: {
          type: 'object',
          properties: {
            rootKeys: { type: 'array', items: tufKey, minItems: 1, maxItems: 16 },
            targetsKeys: { type: 'array', items: tufKey, minItems: 1, maxItems: 16 },
            rootThreshold: { type: 'integer', minimum: 1 },
            targetsThreshold: { type: 'integer', minimum: 1 },
          },
          required: ['rootKeys', 'targetsKeys'],
          additionalProperties: false,
        },
      },
      status: 201,
      handler: (ctx) =>
        repository.draftRoot(
          ctx.principal.tenant,
          actor(ctx),
          ctx.body as Parameters<RepositoryService['draftRoot']>[2],
        ),
    },
    {
      method: 'GET',
      url: '/ota/repository/pending',
      summary: 'Metadata waiting for offline signatures, with what changes (review before signing)',
      tags: ['releases'],
      action: 'releases:read',
      resource: repo,
      handler: async (ctx) => ({ items: await repository.pending(ctx.principal.tenant) }),
    },
    {
      method: 'POST',
      url: '/ota/repository/signatures',
      summary:
        'Add offline signatures (Ed25519 over the canonical JSON of `signed`) to waiting root or targets metadata; published at the threshold',
      tags: ['releases'],
      action: 'releases:write',
      resource: repo,
      schema: {
        body: {
          type: 'object',
          properties: {
            role: { type: 'string', enum: ['root', 'targets'] },
            digest: { type: 'string', pattern: '^[0-9a-f]{64}$' },
            signatures: {
              type: 'array',
              minItems: 1,
              maxItems: 32,
              items: {
                type: 'object',
                properties: {
                  keyid: { type: 'string', pattern: '^[0-9a-f]{64}$' },
                  sig: { type: 'string', pattern: '^[0-9a-f]{1,1024}$' },
                },
                required: ['keyid', 'sig'],
                additionalProperties: false,
              },
            },
          },
          required: ['role', 'digest', 'signatures'],
          additionalProperties: false,
        },
      },
      handler: (ctx) =>
        repository.sign(
          ctx.principal.tenant,
          actor(ctx),
          ctx.body as Parameters<RepositoryService['sign']>[2],
        ),
    },
    {
      method: 'POST',
      url: '/campaigns',
      summary:
        'Create and start a campaign (or `dryRun`): eligible devices in waves; devices that cannot take the release are listed, not targeted',
      tags: ['campaigns'],
      action: 'campaigns:write',
      resource: campaign,
      status: 201,
      schema: {
        body: {
          type: 'object',
          properties: {
            name: { type: 'string' },
            release: { type: 'string' },
            target: { type: 'object', additionalProperties: true },
            plan: { type: 'object', additionalProperties: true },
            dryRun: { type: 'boolean' },
          },
          required: ['name', 'release', 'target'],
        },
      },
      async handler(ctx) {
        const r = await campaigns.create(ctx.principal.tenant, actor(ctx), ctx.body);
        return { ...r, campaign: r.campaign ? campaignJson(r.campaign) : null };
      },
    },
    {
      method: 'GET',
      url: '/campaigns',
      summary: 'List campaigns, newest first',
      tags: ['campaigns'],
      action: 'campaigns:read',
      resource: campaign,
      schema: { querystring: pageQuery({ state: { type: 'string', maxLength: 32 } }) },
      async handler(ctx) {
        const q = ctx.query as { limit?: number; cursor?: string; state?: string };
        const page = await campaigns.list(ctx.principal.tenant, {
          ...(q.limit !== undefined ? { limit: q.limit } : {}),
          ...(q.cursor !== undefined ? { cursor: q.cursor } : {}),
          ...(q.state !== undefined ? { state: q.state } : {}),
        });
        return { items: page.items.map(campaignJson), nextCursor: page.nextCursor };
      },
    },
    {
      method: 'GET',
      url: '/campaigns/:id',
      summary: 'A campaign with its progress by device state and the current wave',
      tags: ['campaigns'],
      action: 'campaigns:read',
      resource: campaign,
      schema: { params: uuidParam },
      handler: async (ctx) => campaignJson(await campaigns.get(ctx.principal.tenant, ctx.params.id ?? '')),
    },
    {
      method: 'GET',
      url: '/campaigns/:id/devices',
      summary: "The campaign's devices: wave, state, failure reason, versions (excluded devices with why)",
      tags: ['campaigns'],
      action: 'campaigns:read',
      resource: campaign,
      schema: {
        params: uuidParam,
        querystring: pageQuery({
          state: { type: 'string', maxLength: 32 },
          wave: { type: 'integer', minimum: -1 },
        }),
      },
      async handler(ctx) {
        const q = ctx.query as { limit?: number; cursor?: string; state?: string; wave?: number };
        const page = await campaigns.devices(ctx.principal.tenant, ctx.params.id ?? '', {
          ...(q.limit !== undefined ? { limit: q.limit } : {}),
          ...(q.cursor !== undefined ? { cursor: q.cursor } : {}),
          ...(q.state !== undefined ? { state: q.state } : {}),
          ...(q.wave !== undefined ? { wave: q.wave } : {}),
        });
        return { items: page.items.map(assignmentJson), nextCursor: page.nextCursor };
      },
    },
    campaignAction('approve', 'Approve the wave the campaign is waiting at', (ctx) =>
      campaigns.approve(ctx.principal.tenant, actor(ctx), ctx.params.id ?? ''),
    ),
    campaignAction('pause', 'Pause: no new devices are notified; devices in progress finish', (ctx) =>
      campaigns.pause(ctx.principal.tenant, actor(ctx), ctx.params.id ?? '', reason(ctx)),
    ),
    campaignAction('resume', 'Resume a paused campaign (failures seen so far are acknowledged)', (ctx) =>
      campaigns.resume(ctx.principal.tenant, actor(ctx), ctx.params.id ?? ''),
    ),
    campaignAction('cancel', 'Cancel: pending devices are dropped, devices in progress told to stop', (ctx) =>
      campaigns.cancel(ctx.principal.tenant, actor(ctx), ctx.params.id ?? '', reason(ctx)),
    ),
  ];
}
