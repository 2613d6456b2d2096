// Campaigns: which devices get a release, in which waves, and what happens when devices fail.
// Decisions are scheduler.ts's (pure); here: eligibility from capability profiles, claiming devices,
// notices over the device's own MQTT session (retained, so an offline device gets it when it returns),
// progress reports, timeouts, and the audit trail of every step.
import { createHash, randomUUID } from 'node:crypto';
import {
  OTA_STATES,
  topics,
  type CapabilityReport,
  type OtaNotice,
  type OtaStatusReport,
} from '@bulwark/protocol';
import { AppError, type Clock, type Logger } from '../../kernel/index.ts';
import type { AuditService } from '../audit/index.ts';
import { compareVersions, matchesQuery, parseQuery, type DeviceService } from '../devices/index.ts';
import type {
  Assignment,
  AssignmentState,
  Campaign,
  CampaignState,
  CampaignTarget,
  OtaStore,
  Release,
  WaveCounts,
} from './model.ts';
import { ACTIVE_CAMPAIGN_STATES, FAILED, IN_PROGRESS } from './model.ts';
import { hardwareMatches, type Actor, type RepositoryService } from './repository.ts';
import { nextStep, validatePlan, waveSizes, type CampaignPlan } from './scheduler.ts';

export interface OtaOutbound {
  readonly topic: string;
  readonly payload: Buffer;
  readonly qos: 1;
  readonly retain: boolean;
}

export interface CampaignDeps {
  store: OtaStore;
  repository: RepositoryService;
  devices: DeviceService;
  audit: AuditService;
  clock: Clock;
  logger: Logger;
  /** Sends to a device over the connection it opened (broker.publish). */
  publish(m: OtaOutbound): Promise<void>;
  /** Latest capability report per device (JSON text). */
  capabilities(tenant: string, deviceIds: readonly string[]): Promise<Map<string, string>>;
  /** Most devices one campaign may target. */
  maxDevices?: number;
  /** How long after a device's result the campaign is evaluated (results are batched). Default 100 ms. */
  reportDebounceMs?: number;
}

export interface Exclusion {
  readonly deviceId: string;
  readonly reason: string;
}

export interface CampaignInput {
  name: string;
  release: string;
  target: CampaignTarget;
  plan: CampaignPlan;
  dryRun: boolean;
}

export interface CampaignView extends Campaign {
  readonly release: { readonly id: string; readonly name: string; readonly version: string };
  readonly devices: Record<string, number>;
  readonly currentWave: WaveCounts;
  readonly waveSizes: readonly number[];
}

export interface CreateResult {
  readonly campaign: CampaignView | null;
  readonly eligible: number;
  readonly waveSizes: readonly number[];
  readonly excluded: readonly Exclusion[];
  readonly excludedCount: number;
  readonly downgrades: number;
}

export interface CampaignService {
  create(tenant: string, actor: Actor, input: unknown): Promise<CreateResult>;
  get(tenant: string, id: string): Promise<CampaignView>;
  list(
    tenant: string,
    opts?: { limit?: number; cursor?: string; state?: string },
  ): Promise<{ items: CampaignView[]; nextCursor: string | null }>;
  devices(
    tenant: string,
    id: string,
    opts?: { limit?: number; cursor?: string; state?: string; wave?: number },
  ): Promise<{ items: Assignment[]; nextCursor: string | null }>;
  approve(tenant: string, actor: Actor, id: string): Promise<CampaignView>;
  pause(tenant: string, actor: Actor, id: string, reason?: string): Promise<CampaignView>;
  resume(tenant: string, actor: Actor, id: string): Promise<CampaignView>;
  cancel(tenant: string, actor: Actor, id: string, reason?: string): Promise<CampaignView>;
  /** A device's report on `devices/{id}/ota/status`. */
  report(tenant: string, deviceId: string, payload: Buffer): Promise<void>;
  /** Advances every active campaign (timeouts, windows, rate limit): called periodically. */
  tick(): Promise<void>;
  /** Advances one campaign now; resolves when it has nothing more to do. */
  evaluate(tenant: string, id: string): Promise<void>;
  /** Resolves when every evaluation started so far has finished (tests, shutdown). */
  idle(): Promise<void>;
  close(): void;
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9 ._:-]{0,127}$/;
const MAX_REPORT_BYTES = 4096;
const MAX_TICK_STEPS = 1000;
const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

export function validateCampaign(v: unknown): CampaignInput {
  if (!isObject(v)) throw new AppError('ERR_CAMPAIGN_INVALID', 'the campaign must be an object');
  const problems: { path: string; message: string }[] = [];
  for (const k of Object.keys(v))
    if (!['name', 'release', 'target', 'plan', 'dryRun'].includes(k))
      problems.push({ path: k, message: 'unknown field' });
  if (typeof v.name !== 'string' || !NAME.test(v.name))
    problems.push({ path: 'name', message: 'must be 1 to 128 letters, digits, spaces or ._:-' });
  if (typeof v.release !== 'string' || v.release.length === 0 || v.release.length > 64)
    problems.push({ path: 'release', message: 'must be a release id' });
  let target: CampaignTarget | undefined;
  const t = v.target;
  if (!isObject(t))
    problems.push({ path: 'target', message: 'must be {fleet}, {group}, {query} or {devices}' });
  else {
    const keys = Object.keys(t);
    if (keys.length !== 1)
      problems.push({ path: 'target', message: 'must name exactly one of fleet, group, query, devices' });
    else if (typeof t.fleet === 'string' && t.fleet.length <= 512) target = { type: 'fleet', fleet: t.fleet };
    else if (typeof t.group === 'string' && t.group.length > 0 && t.group.length <= 128)
      target = { type: 'group', group: t.group };
    else if (typeof t.query === 'string') {
      parseQuery(t.query); // ERR_GROUP_QUERY_INVALID with the position of the problem
      target = { type: 'query', query: t.query };
    } else if (
      Array.isArray(t.devices) &&
      t.devices.length > 0 &&
      t.devices.length <= 10_000 &&
      t.devices.every((d) => typeof d === 'string' && d.length > 0 && d.length <= 128)
    )
      target = { type: 'devices', devices: [...new Set(t.devices as string[])] };
    else
      problems.push({
        path: 'target',
        message: 'fleet path, group name, query or a list of 1 to 10000 device ids',
      });
  }
  if (v.dryRun !== undefined && typeof v.dryRun !== 'boolean')
    problems.push({ path: 'dryRun', message: 'must be true or false' });
  let plan: CampaignPlan | undefined;
  try {
    plan = validatePlan(v.plan);
  } catch (err) {
    if (err instanceof AppError && err.errors) problems.push(...err.errors);
    else throw err;
  }
  if (problems.length > 0 || !target || !plan) {
    throw new AppError('ERR_CAMPAIGN_INVALID', `${problems[0]?.path} ${problems[0]?.message}`, {
      errors: problems,
    });
  }
  return { name: v.name as string, release: v.release as string, target, plan, dryRun: v.dryRun === true };
}

/** What a device runs of a release's component, from its capability report. */
export function runningVersion(
  caps: CapabilityReport,
  release: Pick<Release, 'kind' | 'name'>,
): string | undefined {
  if (release.kind === 'firmware') return caps.firmware?.version;
  return caps.software?.find((s) => s.name === release.name)?.version;
}

/** Why a device cannot take the release, or its current version ('' when it has none). */
export function eligibility(
  caps: CapabilityReport | undefined,
  release: Pick<Release, 'kind' | 'name' | 'version' | 'hardware'>,
): { ok: true; from: string | undefined; downgrade: boolean } | { ok: false; reason: string } {
  if (!caps) return { ok: false, reason: 'no capability report' };
  const method = caps.updateMethod;
  if (method === undefined) return { ok: false, reason: 'update method unknown' };
  if (method === 'none') return { ok: false, reason: 'not updatable (update method none)' };
  const model = caps.hardware?.model;
  if (!model) return { ok: false, reason: 'hardware model unknown' };
  if (!hardwareMatches(release.hardware, model, caps.hardware?.revision))
    return {
      ok: false,
      reason: `incompatible hardware ${model}${caps.hardware?.revision ? `@${caps.hardware.revision}` : ''}`,
    };
  const from = runningVersion(caps, release);
  if (from !== undefined) {
    const cmp = compareVersions(from, release.version);
    if (cmp === 0) return { ok: false, reason: `already at ${release.version}` };
    return { ok: true, from, downgrade: cmp > 0 };
  }
  return { ok: true, from: undefined, downgrade: false };
}

function parseReport(payload: Buffer): OtaStatusReport {
  if (payload.length > MAX_REPORT_BYTES)
    throw new AppError('ERR_OTA_STATUS_INVALID', `the report is larger than ${MAX_REPORT_BYTES} bytes`);
  let v: unknown;
  try {
    v = JSON.parse(payload.toString('utf8'));
  } catch {
    throw new AppError('ERR_OTA_STATUS_INVALID', 'the report is not JSON');
  }
  if (!isObject(v)) throw new AppError('ERR_OTA_STATUS_INVALID', 'the report must be a JSON object');
  const bad = (m: string) => new AppError('ERR_OTA_STATUS_INVALID', m);
  for (const k of Object.keys(v))
    if (!['campaign', 'state', 'progress', 'reason', 'version', 'health'].includes(k))
      throw bad(`unknown field ${k}`);
  if (typeof v.campaign !== 'string' || v.campaign.length === 0 || v.campaign.length > 64)
    throw bad('campaign is required');
  if (!OTA_STATES.includes(v.state as never)) throw bad(`state must be one of ${OTA_STATES.join(', ')}`);
  if (
    v.progress !== undefined &&
    (!Number.isInteger(v.progress) || (v.progress as number) < 0 || (v.progress as number) > 100)
  )
    throw bad('progress must be an integer from 0 to 100');
  for (const [k, max] of [
    ['reason', 256],
    ['version', 64],
    ['health', 32],
  ] as const) {
    if (v[k] !== undefined && (typeof v[k] !== 'string' || (v[k] as string).length > max))
      throw bad(`${k} must be a string of at most ${max} characters`);
  }
  return v as unknown as OtaStatusReport;
}

const NEXT: Record<OtaStatusReport['state'], readonly AssignmentState[]> = {
  downloading: ['notified', 'downloading'],
  installing: ['notified', 'downloading', 'installing'],
  rebooting: ['notified', 'downloading', 'installing', 'rebooting'],
  // A device told to stop may still finish: what it did is recorded.
  succeeded: [...IN_PROGRESS, 'cancelled'],
  failed: [...IN_PROGRESS, 'cancelled'],
  'rolled-back': [...IN_PROGRESS, 'failed', 'cancelled'],
};

export function createCampaignService(deps: CampaignDeps): CampaignService {
  const { store, repository, devices, audit, clock, logger } = deps;
  const maxDevices = deps.maxDevices ?? 1_000_000;
  const key = (tenant: string, id: string) => `${tenant}\u0000${id}`;
  const running = new Map<string, Promise<void>>();
  const again = new Set<string>();
  // Reports arrive by the thousand: they schedule one evaluation per campaign a moment later instead of
  // one each (the evaluation counts the wave, which costs the same for one report or a thousand).
  const kicks = new Map<string, { timer: ReturnType<typeof setTimeout>; run: () => Promise<void> }>();
  const kick = (tenant: string, id: string) => {
    const k = key(tenant, id);
    if (kicks.has(k) || closed) return;
    const run = () => {
      const entry = kicks.get(k);
      if (entry) clearTimeout(entry.timer);
      kicks.delete(k);
      return evaluate(tenant, id);
    };
    const timer = setTimeout(() => void run(), deps.reportDebounceMs ?? 100);
    timer.unref?.();
    kicks.set(k, { timer, run });
  };
  const releases = new Map<string, Release>();
  let closed = false;

  const releaseOf = async (tenant: string, id: string): Promise<Release> => {
    const k = key(tenant, id);
    let r = releases.get(k);
    if (!r) {
      r = await repository.getRelease(tenant, id);
      if (releases.size > 1000) releases.clear();
      releases.set(k, r);
    }
    return r;
  };

  const notice = (deviceId: string, n: OtaNotice | null): OtaOutbound => ({
    topic: topics.otaNotify(deviceId),
    // An empty retained message removes the notice (MQTT 3.3.1.3): nothing waits for the device any more.
    payload: n ? Buffer.from(JSON.stringify(n)) : Buffer.alloc(0),
    qos: 1,
    retain: true,
  });
  const send = async (items: readonly OtaOutbound[]) => {
    for (let i = 0; i < items.length; i += 200) {
      await Promise.all(
        items
          .slice(i, i + 200)
          .map((m) =>
            deps
              .publish(m)
              .catch((err: unknown) =>
                logger.warn({ err: String(err), topic: m.topic }, 'OTA notice not sent'),
              ),
          ),
      );
    }
  };

  const view = async (c: Campaign): Promise<CampaignView> => {
    const r = await releaseOf(c.tenant, c.releaseId);
    return {
      ...c,
      release: { id: r.id, name: r.name, version: r.version },
      devices: await store.countByState(c.tenant, c.id),
      currentWave: await store.waveCounts(c.tenant, c.id, c.wave),
      waveSizes: waveSizes(c.total, c.plan.waves),
    };
  };

  const load = async (tenant: string, id: string): Promise<Campaign> => {
    const c = await store.getCampaign(tenant, id);
    if (!c) throw new AppError('ERR_CAMPAIGN_NOT_FOUND', `Campaign ${id} not found`);
    return c;
  };

  /** Applies a change with compare-and-set; retries on a concurrent change (another node, a report). */
  const change = async (
    tenant: string,
    id: string,
    fn: (c: Campaign) => Partial<Campaign> | undefined,
  ): Promise<{ before: Campaign; after: Campaign } | undefined> => {
    for (let attempt = 0; attempt < 10; attempt++) {
      const c = await load(tenant, id);
      const patch = fn(c);
      if (!patch) return undefined;
      const after: Campaign = { ...c, ...patch, revision: c.revision + 1, updatedAt: clock.now() };
      if (await store.updateCampaign(after, c.revision)) return { before: c, after };
    }
    throw new AppError('ERR_UNAVAILABLE', undefined, {
      detail: `campaign ${id}: too many concurrent changes`,
    });
  };

  const record = (
    c: Campaign,
    actor: Actor,
    action: string,
    extra: { reason?: string; details?: Record<string, unknown> } = {},
  ) =>
    audit.recordLater({
      tenant: c.tenant,
      actor,
      action,
      target: { type: 'campaign', id: c.id },
      outcome: 'success',
      ...(extra.reason !== undefined ? { reason: extra.reason } : {}),
      details: { wave: c.wave, state: c.state, ...extra.details },
    });

  const system: Actor = { type: 'system', id: 'campaign-scheduler' };

  /** Stops a campaign: pending devices are cancelled, devices in progress told to stop, failed ones maybe rolled back. */
  const stop = async (c: Campaign, state: 'aborted' | 'cancelled', rollback: boolean) => {
    const now = clock.now();
    await store.bulkState(c.tenant, c.id, ['pending'], 'cancelled', `campaign ${state}`, now);
    const active = await store.bulkState(c.tenant, c.id, IN_PROGRESS, 'cancelled', `campaign ${state}`, now);
    const out = active.map((d) => notice(d, { campaign: c.id, action: 'cancel' }));
    if (rollback) {
      for (let after: string | undefined; ;) {
        const failed = await store.listAssignments(c.tenant, c.id, {
          limit: 1000,
          state: 'failed',
          ...(after ? { afterId: after } : {}),
        });
        for (const a of failed)
          out.push(
            notice(a.deviceId, {
              campaign: c.id,
              action: 'rollback',
              ...(a.fromVersion ? { version: a.fromVersion } : {}),
            }),
          );
        if (failed.length < 1000) break;
        after = failed[failed.length - 1]?.deviceId;
      }
    }
    await send(out);
    return { cancelledInProgress: active.length, rollbacks: out.length - active.length };
  };

  const expireOverdue = async (c: Campaign) => {
    const now = clock.now();
    const overdue = await store.overdue(c.tenant, c.id, now - c.plan.deviceTimeoutSeconds * 1000, 1000);
    const cleared: OtaOutbound[] = [];
    for (const a of overdue) {
      const reason = `no result within ${c.plan.deviceTimeoutSeconds} s (last state ${a.state})`;
      if (
        await store.updateAssignment(
          c.tenant,
          c.id,
          a.deviceId,
          IN_PROGRESS,
          { state: 'failed', reason },
          now,
        )
      ) {
        cleared.push(notice(a.deviceId, null));
        audit.recordLater({
          tenant: c.tenant,
          actor: system,
          action: 'campaign.device.failed',
          target: { type: 'device', id: a.deviceId },
          outcome: 'failure',
          reason,
          details: { campaign: c.id, wave: a.wave },
        });
      }
    }
    await send(cleared);
  };

  /** Runs scheduler steps until there is nothing to do now. */
  const advance = async (tenant: string, id: string): Promise<void> => {
    for (let i = 0; i < MAX_TICK_STEPS && !closed; i++) {
      const c = await load(tenant, id);
      if (!ACTIVE_CAMPAIGN_STATES.includes(c.state)) return;
      await expireOverdue(c);
      if (c.state !== 'running') return;
      const now = clock.now();
      const counts = await store.waveCounts(tenant, id, c.wave);
      const step = nextStep({
        state: c.state,
        plan: c.plan,
        wave: c.wave,
        waveCount: c.waveCount,
        approvedWave: c.approvedWave,
        failuresAcknowledged: c.failuresAcknowledged,
        counts,
        inProgress: await store.countInProgress(tenant, id),
        notifiedLastMinute: await store.countNotifiedSince(tenant, id, now - 60_000),
        now,
      });
      switch (step.kind) {
        case 'idle':
          return;
        case 'notify': {
          if (counts.pending === counts.total)
            record(c, system, 'campaign.wave.start', { details: { size: counts.total, wave: c.wave } });
          const release = await releaseOf(tenant, c.releaseId);
          const claimed = await store.claimPending(tenant, id, c.wave, step.count, now);
          await send(
            claimed.map((a) =>
              notice(a.deviceId, {
                campaign: c.id,
                action: 'install',
                target: release.targetPath,
                version: release.version,
              }),
            ),
          );
          if (claimed.length === 0) return;
          break;
        }
        case 'threshold': {
          const reason = `wave ${c.wave + 1}: ${step.failed} of ${step.size} devices failed (threshold ${c.plan.failureThresholdPercent}%)`;
          const state: CampaignState = step.action === 'abort' ? 'aborted' : 'paused';
          const done = await change(tenant, id, (x) =>
            x.revision === c.revision ? { state, stateReason: reason } : undefined,
          );
          if (!done) break;
          let details: Record<string, unknown> = { failed: step.failed, size: step.size };
          if (state === 'aborted')
            details = { ...details, ...(await stop(done.after, 'aborted', c.plan.rollbackOnAbort)) };
          record(done.after, system, state === 'aborted' ? 'campaign.abort' : 'campaign.pause', {
            reason,
            details,
          });
          return;
        }
        case 'advance': {
          const done = await change(tenant, id, (x) =>
            x.revision === c.revision
              ? {
                  wave: step.to,
                  failuresAcknowledged: 0,
                  ...(step.awaitApproval
                    ? {
                        state: 'awaiting-approval' as const,
                        stateReason: `wave ${step.to + 1} waits for approval`,
                      }
                    : { stateReason: null }),
                }
              : undefined,
          );
          if (done) {
            record(c, system, 'campaign.wave.complete', {
              details: { succeeded: counts.succeeded, failed: counts.failed, cancelled: counts.cancelled },
            });
            if (step.awaitApproval) record(done.after, system, 'campaign.wave.await-approval');
          }
          break;
        }
        case 'complete': {
          const done = await change(tenant, id, (x) =>
            x.revision === c.revision ? { state: 'completed', stateReason: null } : undefined,
          );
          if (done)
            record(done.after, system, 'campaign.complete', {
              details: { devices: await store.countByState(tenant, id) },
            });
          return;
        }
      }
    }
  };

  const evaluate = (tenant: string, id: string): Promise<void> => {
    const k = key(tenant, id);
    const current = running.get(k);
    if (current) {
      again.add(k);
      return current;
    }
    const run = (async () => {
      do {
        again.delete(k);
        await advance(tenant, id).catch((err: unknown) =>
          logger.error({ err: String((err as Error)?.stack ?? err), campaign: id }, 'campaign step failed'),
        );
      } while (again.has(k) && !closed);
    })().finally(() => running.delete(k));
    running.set(k, run);
    return run;
  };

  const resolveTargets = async (tenant: string, target: CampaignTarget) => {
    const out: { id: string; status: string }[] = [];
    if (target.type === 'devices') {
      for (const id of target.devices) {
        const d = await devices.find(tenant, id);
        if (d) out.push({ id: d.id, status: d.status });
        else throw new AppError('ERR_CAMPAIGN_INVALID', `device ${id} does not exist`);
      }
      return out;
    }
    if (target.type === 'fleet' && target.fleet !== '') await devices.getFleet(tenant, target.fleet);
    if (target.type === 'group') await devices.getGroup(tenant, target.group);
    const q = target.type === 'query' ? parseQuery(target.query) : undefined;
    const scope =
      target.type === 'fleet'
        ? target.fleet === ''
          ? {}
          : { fleet: target.fleet, subtree: true }
        : target.type === 'group'
          ? { group: target.group }
          : {};
    for (let after: string | undefined; ;) {
      const page = await devices.scan(tenant, {
        limit: 1000,
        ...(after ? { afterId: after } : {}),
        ...scope,
      });
      for (const p of page) {
        const d = p.device;
        if (q && !matchesQuery(q, { id: d.id, status: d.status, fleet: d.fleet, attributes: d.attributes }))
          continue;
        out.push({ id: d.id, status: d.status });
        if (out.length > maxDevices)
          throw new AppError('ERR_CAMPAIGN_INVALID', `a campaign targets at most ${maxDevices} devices`);
      }
      if (page.length < 1000) break;
      after = page[page.length - 1]?.device.id;
    }
    return out;
  };

  const campaignOrder = (campaignId: string, deviceId: string) =>
    createHash('sha256').update(campaignId).update('\0').update(deviceId).digest('hex');

  return {
    async create(tenant, actor, raw) {
      const input = validateCampaign(raw);
      const release = await repository.getRelease(tenant, input.release);
      if (release.state !== 'published')
        throw new AppError(
          'ERR_CAMPAIGN_RELEASE_UNSIGNED',
          `Release ${release.name} ${release.version} is not in signed targets metadata yet`,
        );
      const targets = await resolveTargets(tenant, input.target);
      const ids = targets.map((t) => t.id);
      const caps = await deps.capabilities(tenant, ids);
      const busy = await store.busyDevices(tenant, ids);
      const id = randomUUID();
      const now = clock.now();
      const excluded: Exclusion[] = [];
      const eligible: { deviceId: string; from: string | undefined; order: string }[] = [];
      const downgrades: { deviceId: string; from: string }[] = [];
      for (const t of targets) {
        if (t.status !== 'active') {
          excluded.push({ deviceId: t.id, reason: `device ${t.status}` });
          continue;
        }
        if (busy.has(t.id)) {
          excluded.push({ deviceId: t.id, reason: 'in another active campaign' });
          continue;
        }
        let report: CapabilityReport | undefined;
        const text = caps.get(t.id);
        if (text !== undefined) {
          try {
            report = JSON.parse(text) as CapabilityReport;
          } catch {
            report = undefined;
          }
        }
        const e = eligibility(report, release);
        if (!e.ok) {
          excluded.push({ deviceId: t.id, reason: e.reason });
          continue;
        }
        if (e.downgrade) downgrades.push({ deviceId: t.id, from: e.from ?? '' });
        eligible.push({ deviceId: t.id, from: e.from, order: campaignOrder(id, t.id) });
      }
      if (downgrades.length > 0 && !input.plan.allowDowngrade) {
        throw new AppError(
          'ERR_CAMPAIGN_DOWNGRADE',
          `${downgrades.length} device(s) run a newer version than ${release.version}; set allowDowngrade to downgrade them`,
          {
            errors: downgrades
              .slice(0, 20)
              .map((d) => ({ path: d.deviceId, message: `runs ${d.from}, newer than ${release.version}` })),
          },
        );
      }
      if (downgrades.length > 0 && !release.allowDowngrade) {
        throw new AppError(
          'ERR_CAMPAIGN_DOWNGRADE',
          `Release ${release.name} ${release.version} is not signed with downgrade authorisation; devices would refuse it`,
        );
      }
      if (eligible.length === 0) {
        throw new AppError(
          'ERR_CAMPAIGN_NO_DEVICES',
          `None of the ${targets.length} targeted devices can take this release`,
          {
            errors: excluded.slice(0, 20).map((x) => ({ path: x.deviceId, message: x.reason })),
          },
        );
      }
      eligible.sort((a, b) => (a.order < b.order ? -1 : a.order > b.order ? 1 : 0));
      const sizes = waveSizes(eligible.length, input.plan.waves);
      const result = {
        eligible: eligible.length,
        waveSizes: sizes,
        excluded: excluded.slice(0, 1000),
        excludedCount: excluded.length,
        downgrades: downgrades.length,
      };
      if (input.dryRun) return { campaign: null, ...result };
      const assignments: Assignment[] = [];
      let wave = 0;
      let left = sizes[0] ?? 0;
      eligible.forEach((e, ord) => {
        while (left === 0 && wave < sizes.length - 1) left = sizes[++wave] ?? 0;
        left--;
        assignments.push({
          deviceId: e.deviceId,
          wave,
          ord,
          state: 'pending',
          reason: null,
          fromVersion: e.from ?? null,
          version: null,
          health: null,
          progress: null,
          notifiedAt: null,
          updatedAt: now,
        });
      });
      for (const x of excluded)
        assignments.push({
          deviceId: x.deviceId,
          wave: -1,
          ord: -1,
          state: 'excluded',
          reason: x.reason,
          fromVersion: null,
          version: null,
          health: null,
          progress: null,
          notifiedAt: null,
          updatedAt: now,
        });
      const campaign: Campaign = {
        tenant,
        id,
        name: input.name,
        releaseId: release.id,
        target: input.target,
        plan: input.plan,
        state: 'running',
        stateReason: null,
        wave: 0,
        waveCount: sizes.length,
        approvedWave: 0,
        failuresAcknowledged: 0,
        total: eligible.length,
        excluded: excluded.length,
        revision: 1,
        createdBy: actor.id,
        createdAt: now,
        updatedAt: now,
      };
      await store.insertCampaign(campaign, assignments);
      await audit.record({
        tenant,
        actor,
        action: 'campaign.create',
        target: { type: 'campaign', id },
        outcome: 'success',
        details: {
          release: `${release.name} ${release.version}`,
          target: input.target,
          eligible: eligible.length,
          excluded: excluded.length,
          waves: sizes,
        },
      });
      if (downgrades.length > 0) {
        await audit.record({
          tenant,
          actor,
          action: 'campaign.downgrade',
          target: { type: 'campaign', id },
          outcome: 'success',
          reason: `explicit downgrade of ${downgrades.length} device(s) to ${release.version}`,
          details: { devices: downgrades.slice(0, 100) },
        });
      }
      await evaluate(tenant, id);
      return { campaign: await view(await load(tenant, id)), ...result };
    },

    async get(tenant, id) {
      return view(await load(tenant, id));
    },

    async list(tenant, opts = {}) {
      const limit = Math.min(Math.max(opts.limit ?? 50, 1), 200);
      const before = opts.cursor === undefined ? undefined : Number(opts.cursor);
      if (before !== undefined && !Number.isSafeInteger(before))
        throw new AppError('ERR_VALIDATION', 'invalid cursor');
      const rows = await store.listCampaigns(tenant, {
        limit: limit + 1,
        ...(before !== undefined ? { before } : {}),
        ...(opts.state ? { state: opts.state } : {}),
      });
      const items = await Promise.all(rows.slice(0, limit).map(view));
      const last = items[items.length - 1];
      return { items, nextCursor: rows.length > limit && last ? String(last.createdAt) : null };
    },

    async devices(tenant, id, opts = {}) {
      await load(tenant, id);
      const limit = Math.min(Math.max(opts.limit ?? 100, 1), 1000);
      const rows = await store.listAssignments(tenant, id, {
        limit: limit + 1,
        ...(opts.cursor ? { afterId: opts.cursor } : {}),
        ...(opts.state ? { state: opts.state } : {}),
        ...(opts.wave !== undefined ? { wave: opts.wave } : {}),
      });
      const items = rows.slice(0, limit);
      const last = items[items.length - 1];
      return { items, nextCursor: rows.length > limit && last ? last.deviceId : null };
    },

    async approve(tenant, actor, id) {
      const done = await change(tenant, id, (c) => {
        if (c.state !== 'awaiting-approval')
          throw new AppError('ERR_CAMPAIGN_STATE', `Campaign is ${c.state}, not waiting for approval`);
        return { state: 'running', stateReason: null, approvedWave: c.wave };
      });
      if (done) record(done.after, actor, 'campaign.approve', { details: { approvedWave: done.after.wave } });
      await evaluate(tenant, id);
      return view(await load(tenant, id));
    },

    async pause(tenant, actor, id, reason) {
      const done = await change(tenant, id, (c) => {
        if (c.state !== 'running' && c.state !== 'awaiting-approval')
          throw new AppError(
            'ERR_CAMPAIGN_STATE',
            `Campaign is ${c.state}; only a running campaign can be paused`,
          );
        return { state: 'paused', stateReason: reason ?? `paused by ${actor.id}` };
      });
      if (done) record(done.after, actor, 'campaign.pause', { reason: done.after.stateReason ?? '' });
      return view(await load(tenant, id));
    },

    async resume(tenant, actor, id) {
      let acknowledged = 0;
      const c0 = await load(tenant, id);
      if (c0.state === 'paused') acknowledged = (await store.waveCounts(tenant, id, c0.wave)).failed;
      const done = await change(tenant, id, (c) => {
        if (c.state !== 'paused')
          throw new AppError('ERR_CAMPAIGN_STATE', `Campaign is ${c.state}, not paused`);
        // The failures an operator saw when resuming are not counted against the threshold again.
        return { state: 'running', stateReason: null, failuresAcknowledged: acknowledged };
      });
      if (done)
        record(done.after, actor, 'campaign.resume', { details: { failuresAcknowledged: acknowledged } });
      await evaluate(tenant, id);
      return view(await load(tenant, id));
    },

    async cancel(tenant, actor, id, reason) {
      const done = await change(tenant, id, (c) => {
        if (!ACTIVE_CAMPAIGN_STATES.includes(c.state))
          throw new AppError('ERR_CAMPAIGN_STATE', `Campaign is already ${c.state}`);
        return { state: 'cancelled', stateReason: reason ?? `cancelled by ${actor.id}` };
      });
      if (done) {
        const details = await stop(done.after, 'cancelled', false);
        record(done.after, actor, 'campaign.cancel', { reason: done.after.stateReason ?? '', details });
      }
      return view(await load(tenant, id));
    },

    async report(tenant, deviceId, payload) {
      const r = parseReport(payload);
      const c = await store.getCampaign(tenant, r.campaign);
      const a = c && (await store.getAssignment(tenant, c.id, deviceId));
      if (!c || !a || a.state === 'excluded')
        throw new AppError('ERR_OTA_STATUS_INVALID', `device ${deviceId} is not in campaign ${r.campaign}`);
      const now = clock.now();
      let state: AssignmentState = r.state;
      let reason = r.reason ?? null;
      if (r.state === 'succeeded') {
        const release = await releaseOf(tenant, c.releaseId);
        if (r.version !== release.version) {
          state = 'failed';
          reason = `reported version ${r.version ?? '(none)'} after the update, expected ${release.version}`;
        }
      }
      if (a.state === state && (state === 'succeeded' || FAILED.includes(state))) return; // repeated
      const ok = await store.updateAssignment(
        tenant,
        c.id,
        deviceId,
        NEXT[r.state],
        {
          state,
          ...(reason !== null ? { reason } : {}),
          ...(r.version !== undefined ? { version: r.version } : {}),
          ...(r.health !== undefined ? { health: r.health } : {}),
          ...(r.progress !== undefined ? { progress: r.progress } : {}),
        },
        now,
      );
      if (!ok) {
        if (IN_PROGRESS.includes(a.state) || a.state === state) return; // reordered progress: ignore
        throw new AppError('ERR_OTA_STATUS_INVALID', `cannot go from ${a.state} to ${r.state}`);
      }
      if (state === 'succeeded' || FAILED.includes(state)) {
        // A device failing after its campaign was aborted still gets the rollback the others got.
        const rollback = state === 'failed' && c.state === 'aborted' && c.plan.rollbackOnAbort;
        await send([
          notice(
            deviceId,
            rollback
              ? { campaign: c.id, action: 'rollback', ...(a.fromVersion ? { version: a.fromVersion } : {}) }
              : null,
          ),
        ]);
        if (state !== 'succeeded') {
          audit.recordLater({
            tenant,
            actor: { type: 'device', id: deviceId },
            action: state === 'failed' ? 'campaign.device.failed' : 'campaign.device.rolled-back',
            target: { type: 'device', id: deviceId },
            outcome: 'failure',
            reason: reason ?? state,
            details: { campaign: c.id, wave: a.wave },
          });
        }
        if (ACTIVE_CAMPAIGN_STATES.includes(c.state)) kick(tenant, c.id);
      }
    },

    async tick() {
      if (closed) return;
      const active = await store.activeCampaigns();
      await Promise.all(active.map((c) => evaluate(c.tenant, c.id)));
    },

    evaluate,

    async idle() {
      while (running.size > 0 || kicks.size > 0) {
        await Promise.all([...[...kicks.values()].map((k) => k.run()), ...running.values()]);
      }
    },

    close() {
      closed = true;
      for (const k of kicks.values()) clearTimeout(k.timer);
      kicks.clear();
    },
  };
}
