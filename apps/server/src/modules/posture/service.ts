// The fleet's security posture: findings that producers observe (device capability reports, policy
// lint when a policy is written, device tamper reports), kept with first and last sighting, resolved by
// people or, when the producer no longer observes them, by the platform. Every new finding, and every
// resolved one seen again, is announced (app.ts turns that into a `posture.finding` webhook event).
import type { CapabilityReport } from '@bulwark/protocol';
import { AppError, decodeCursor, encodeCursor, type Clock, type Ids } from '../../kernel/index.ts';
import {
  capabilityObservations,
  parseTamperReport,
  policyObservations,
  tamperObservation,
  type LintLike,
} from './checks.ts';
import type { Finding, FindingKind, FindingStatus, Observation, PostureStore, Severity } from './model.ts';

export interface PostureDeps {
  store: PostureStore;
  clock: Clock;
  ids: Ids;
  /** A finding was opened (new, or resolved and seen again). Called after it is stored. */
  opened?(finding: Finding): void;
}

export interface FindingView {
  id: string;
  deviceId: string | null;
  kind: FindingKind;
  severity: Severity;
  summary: string;
  details: Readonly<Record<string, unknown>>;
  status: FindingStatus;
  occurrences: number;
  firstSeenAt: string;
  lastSeenAt: string;
  resolvedAt: string | null;
  resolvedBy: string | null;
  resolution: string | null;
}

export function findingView(f: Finding): FindingView {
  return {
    id: f.id,
    deviceId: f.deviceId,
    kind: f.kind,
    severity: f.severity,
    summary: f.summary,
    details: f.details,
    status: f.status,
    occurrences: f.occurrences,
    firstSeenAt: new Date(f.firstSeenAt).toISOString(),
    lastSeenAt: new Date(f.lastSeenAt).toISOString(),
    resolvedAt: f.resolvedAt === null ? null : new Date(f.resolvedAt).toISOString(),
    resolvedBy: f.resolvedBy,
    resolution: f.resolution,
  };
}

export type PostureService = ReturnType<typeof createPostureService>;

export function createPostureService(deps: PostureDeps) {
  const { store, clock, ids } = deps;

  /** Records what a producer observes now; with `replaces`, its earlier findings not seen now are resolved. */
  const observe = async (
    tenant: string,
    source: string,
    deviceId: string | null,
    observations: readonly Observation[],
    replaces: boolean,
  ): Promise<Finding[]> => {
    const now = clock.now();
    const opened: Finding[] = [];
    for (const o of observations) {
      // Two nodes may observe the same subject at once: the unique subject decides who inserts.
      let outcome: 'new' | 'reopened' | 'seen' | undefined = await store.observeAgain(
        tenant,
        o.subject,
        o,
        now,
      );
      const fresh: Finding = {
        id: ids.uuid(),
        tenant,
        deviceId,
        kind: o.kind,
        severity: o.severity,
        summary: o.summary,
        details: o.details,
        status: 'open',
        occurrences: 1,
        firstSeenAt: now,
        lastSeenAt: now,
        resolvedAt: null,
        resolvedBy: null,
        resolution: null,
        source,
        subject: o.subject,
      };
      if (outcome === undefined)
        outcome = (await store.insert(fresh)) ? 'new' : await store.observeAgain(tenant, o.subject, o, now);
      if (outcome === 'new') opened.push(fresh);
      else if (outcome === 'reopened') {
        const f = await store.getBySubject(tenant, o.subject);
        if (f) opened.push(f);
      }
    }
    if (replaces)
      await store.resolveMissing(
        tenant,
        source,
        observations.map((o) => o.subject),
        now,
        'no longer observed',
      );
    for (const f of opened) deps.opened?.(f);
    return opened;
  };

  return {
    /** A device stored a new capability report: listening ports, weak or missing security capabilities. */
    capabilitiesReported(tenant: string, deviceId: string, report: CapabilityReport) {
      return observe(tenant, `device:${deviceId}`, deviceId, capabilityObservations(deviceId, report), true);
    },

    /** A policy was written (its lint findings) or deleted (null): its findings follow. */
    policyWritten(tenant: string, policyId: string, lint: readonly LintLike[] | null) {
      return observe(tenant, `policy:${policyId}`, null, policyObservations(policyId, lint ?? []), true);
    },

    /** A device's report on devices/{id}/events/tamper (untrusted; ERR_POSTURE_TAMPER_INVALID). */
    async tamperReported(tenant: string, deviceId: string, payload: Buffer) {
      const report = parseTamperReport(payload);
      return observe(tenant, `tamper:${deviceId}`, deviceId, [tamperObservation(deviceId, report)], false);
    },

    /** The device is gone: what was found about it is moot. */
    async deviceDeleted(tenant: string, deviceId: string) {
      return store.resolveDevice(tenant, deviceId, clock.now(), 'device deleted');
    },

    async list(
      tenant: string,
      q: {
        status?: FindingStatus;
        severity?: Severity;
        kind?: FindingKind;
        deviceId?: string;
        limit?: number;
        cursor?: string;
      },
    ): Promise<{ items: FindingView[]; nextCursor: string | null }> {
      const limit = Math.min(Math.max(q.limit ?? 50, 1), 1000);
      const before = q.cursor ? decodeCursor<{ t: number; id: string }>(q.cursor, ['t', 'id']) : undefined;
      const rows = await store.list(tenant, {
        limit: limit + 1,
        ...(q.status ? { status: q.status } : {}),
        ...(q.severity ? { severity: q.severity } : {}),
        ...(q.kind ? { kind: q.kind } : {}),
        ...(q.deviceId ? { deviceId: q.deviceId } : {}),
        ...(before ? { before: { lastSeenAt: Number(before.t), id: String(before.id) } } : {}),
      });
      const page = rows.slice(0, limit);
      const last = page.at(-1);
      return {
        items: page.map(findingView),
        nextCursor: rows.length > limit && last ? encodeCursor({ t: last.lastSeenAt, id: last.id }) : null,
      };
    },

    async get(tenant: string, id: string): Promise<Finding> {
      const f = await store.getById(tenant, id);
      if (!f) throw new AppError('ERR_POSTURE_FINDING_NOT_FOUND');
      return f;
    },

    /** A person resolved the finding (fixed, accepted, false positive: `note` says which). */
    async resolve(
      tenant: string,
      id: string,
      by: string,
      note: string | undefined,
    ): Promise<{ finding: Finding; resolved: boolean }> {
      const f = await store.getById(tenant, id);
      if (!f) throw new AppError('ERR_POSTURE_FINDING_NOT_FOUND');
      const resolved =
        f.status === 'open' && (await store.resolve(tenant, id, clock.now(), by, note ?? null));
      return { finding: (await store.getById(tenant, id)) ?? f, resolved };
    },
  };
}
