import { AppError, isUniqueViolation, type Db, type SqlValue } from '../../kernel/index.ts';
import type {
  Assignment,
  AssignmentState,
  Campaign,
  CampaignState,
  OtaStore,
  PendingMetadata,
  Release,
  ReleaseKind,
  ReleaseState,
  StoredMetadata,
  TufRole,
  WaveCounts,
} from './model.ts';
import { FAILED, IN_PROGRESS } from './model.ts';
import type { CampaignPlan } from './scheduler.ts';

// PostgreSQL returns BIGINT as strings: every number read here goes through Number().
type Row = Record<string, unknown>;
const num = (v: unknown): number => Number(v);
const numOrNull = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));
const strOrNull = (v: unknown): string | null => (v === null || v === undefined ? null : String(v));
const placeholders = (n: number) => Array.from({ length: n }, () => '?').join(', ');
const chunks = <T>(xs: readonly T[], n: number): T[][] => {
  const out: T[][] = [];
  for (let i = 0; i < xs.length; i += n) out.push(xs.slice(i, i + n));
  return out;
};

const toRelease = (r: Row): Release => ({
  tenant: String(r.tenant_id),
  id: String(r.id),
  name: String(r.name),
  version: String(r.version),
  kind: String(r.kind) as ReleaseKind,
  targetPath: String(r.target_path),
  sha256: String(r.sha256),
  size: num(r.size),
  hardware: JSON.parse(String(r.hardware)) as string[],
  sbom:
    r.sbom === null || r.sbom === undefined ? null : (JSON.parse(String(r.sbom)) as Record<string, unknown>),
  allowDowngrade: num(r.allow_downgrade) === 1,
  notes: String(r.notes),
  state: String(r.state) as ReleaseState,
  createdBy: String(r.created_by),
  createdAt: num(r.created_at),
  publishedAt: numOrNull(r.published_at),
});

const toCampaign = (r: Row): Campaign => ({
  tenant: String(r.tenant_id),
  id: String(r.id),
  name: String(r.name),
  releaseId: String(r.release_id),
  target: JSON.parse(String(r.target)) as Campaign['target'],
  plan: JSON.parse(String(r.plan)) as CampaignPlan,
  state: String(r.state) as CampaignState,
  stateReason: strOrNull(r.state_reason),
  wave: num(r.wave),
  waveCount: num(r.wave_count),
  approvedWave: num(r.approved_wave),
  failuresAcknowledged: num(r.failures_acknowledged),
  total: num(r.total),
  excluded: num(r.excluded),
  revision: num(r.revision),
  createdBy: String(r.created_by),
  createdAt: num(r.created_at),
  updatedAt: num(r.updated_at),
});

const toAssignment = (r: Row): Assignment => ({
  deviceId: String(r.device_id),
  wave: num(r.wave),
  ord: num(r.ord),
  state: String(r.state) as AssignmentState,
  reason: strOrNull(r.reason),
  fromVersion: strOrNull(r.from_version),
  version: strOrNull(r.version),
  health: strOrNull(r.health),
  progress: numOrNull(r.progress),
  notifiedAt: numOrNull(r.notified_at),
  updatedAt: num(r.updated_at),
});

const toMetadata = (r: Row): StoredMetadata => ({
  role: String(r.role) as TufRole,
  version: num(r.version),
  body: String(r.body),
  expiresAt: num(r.expires_at),
});

export function createOtaStore(db: Db): OtaStore {
  return {
    async insertRelease(r) {
      try {
        await db.run(
          `INSERT INTO ota_releases (tenant_id, id, name, version, kind, target_path, sha256, size, hardware, sbom,
             allow_downgrade, notes, state, created_by, created_at, published_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
          [
            r.tenant,
            r.id,
            r.name,
            r.version,
            r.kind,
            r.targetPath,
            r.sha256,
            r.size,
            JSON.stringify(r.hardware),
            r.sbom === null ? null : JSON.stringify(r.sbom),
            r.allowDowngrade ? 1 : 0,
            r.notes,
            r.state,
            r.createdBy,
            r.createdAt,
            r.publishedAt,
          ],
        );
      } catch (err) {
        if (isUniqueViolation(err))
          throw new AppError('ERR_RELEASE_EXISTS', `Release ${r.name} ${r.version} already exists`);
        throw err;
      }
    },
    async getRelease(tenant, id) {
      const r = await db.get<Row>('SELECT * FROM ota_releases WHERE tenant_id = ? AND id = ?', [tenant, id]);
      return r && toRelease(r);
    },
    async findRelease(tenant, name, version) {
      const r = await db.get<Row>(
        'SELECT * FROM ota_releases WHERE tenant_id = ? AND name = ? AND version = ?',
        [tenant, name, version],
      );
      return r && toRelease(r);
    },
    async listReleases(tenant, { limit, before, name }) {
      const where = ['tenant_id = ?'];
      const params: SqlValue[] = [tenant];
      if (name !== undefined) {
        where.push('name = ?');
        params.push(name);
      }
      if (before !== undefined) {
        where.push('created_at < ?');
        params.push(before);
      }
      const rows = await db.all<Row>(
        `SELECT * FROM ota_releases WHERE ${where.join(' AND ')} ORDER BY created_at DESC, id LIMIT ?`,
        [...params, limit],
      );
      return rows.map(toRelease);
    },
    async releasesForTargets(tenant) {
      const rows = await db.all<Row>('SELECT * FROM ota_releases WHERE tenant_id = ? ORDER BY target_path', [
        tenant,
      ]);
      return rows.map(toRelease);
    },
    async publishReleases(tenant, paths, at) {
      for (const part of chunks(paths, 500)) {
        await db.run(
          `UPDATE ota_releases SET state = 'published', published_at = ? WHERE tenant_id = ? AND state = 'unsigned' AND target_path IN (${placeholders(part.length)})`,
          [at, tenant, ...part],
        );
      }
    },
    async releaseWithBlob(tenant, sha256) {
      const r = await db.get<Row>(
        "SELECT * FROM ota_releases WHERE tenant_id = ? AND sha256 = ? AND state = 'published' LIMIT 1",
        [tenant, sha256],
      );
      return r && toRelease(r);
    },

    async keys(tenant) {
      const rows = await db.all<Row>('SELECT * FROM ota_tuf_keys WHERE tenant_id = ? ORDER BY role, key_id', [
        tenant,
      ]);
      return rows.map((r) => ({
        role: String(r.role) as TufRole,
        keyId: String(r.key_id),
        publicHex: String(r.public_hex),
        sealedPrivate: strOrNull(r.sealed_private),
      }));
    },
    async insertKey(tenant, k, at) {
      await db.run(
        'INSERT INTO ota_tuf_keys (tenant_id, role, key_id, public_hex, sealed_private, created_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING',
        [tenant, k.role, k.keyId, k.publicHex, k.sealedPrivate, at],
      );
    },
    async deleteKeys(tenant, role) {
      await db.run('DELETE FROM ota_tuf_keys WHERE tenant_id = ? AND role = ?', [tenant, role]);
    },
    async latestMetadata(tenant, role) {
      const r = await db.get<Row>(
        'SELECT * FROM ota_tuf_metadata WHERE tenant_id = ? AND role = ? ORDER BY version DESC LIMIT 1',
        [tenant, role],
      );
      return r && toMetadata(r);
    },
    async metadata(tenant, role, version) {
      const r = await db.get<Row>(
        'SELECT * FROM ota_tuf_metadata WHERE tenant_id = ? AND role = ? AND version = ?',
        [tenant, role, version],
      );
      return r && toMetadata(r);
    },
    async insertMetadata(tenant, m, at) {
      try {
        await db.run(
          'INSERT INTO ota_tuf_metadata (tenant_id, role, version, body, expires_at, created_at) VALUES (?, ?, ?, ?, ?, ?)',
          [tenant, m.role, m.version, m.body, m.expiresAt, at],
        );
      } catch (err) {
        // Two nodes refreshing the same timestamp at once: the second one loses, which is fine.
        if (isUniqueViolation(err))
          throw new AppError(
            'ERR_RELEASE_DRAFT_STALE',
            `${m.role} version ${m.version} was published meanwhile`,
          );
        throw err;
      }
    },
    async pending(tenant) {
      const rows = await db.all<Row>('SELECT * FROM ota_tuf_pending WHERE tenant_id = ? ORDER BY role', [
        tenant,
      ]);
      return rows.map((r): PendingMetadata => ({
        role: String(r.role) as 'root' | 'targets',
        version: num(r.version),
        signed: String(r.signed),
        digest: String(r.digest),
        signatures: JSON.parse(String(r.signatures)) as PendingMetadata['signatures'],
        createdAt: num(r.created_at),
      }));
    },
    async setPending(tenant, p) {
      await db.run(
        `INSERT INTO ota_tuf_pending (tenant_id, role, version, signed, digest, signatures, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (tenant_id, role) DO UPDATE SET version = excluded.version, signed = excluded.signed,
           digest = excluded.digest, signatures = excluded.signatures, created_at = excluded.created_at`,
        [tenant, p.role, p.version, p.signed, p.digest, JSON.stringify(p.signatures), p.createdAt],
      );
    },
    async setPendingSignatures(tenant, role, digest, signatures) {
      const r = await db.run(
        'UPDATE ota_tuf_pending SET signatures = ? WHERE tenant_id = ? AND role = ? AND digest = ?',
        [JSON.stringify(signatures), tenant, role, digest],
      );
      return r.changes > 0;
    },
    async deletePending(tenant, role, digest) {
      const r = await db.run('DELETE FROM ota_tuf_pending WHERE tenant_id = ? AND role = ? AND digest = ?', [
        tenant,
        role,
        digest,
      ]);
      return r.changes > 0;
    },
    async repositoryTenants() {
      const rows = await db.all<Row>(
        "SELECT DISTINCT tenant_id FROM ota_tuf_metadata WHERE role = 'timestamp' ORDER BY tenant_id",
      );
      return rows.map((r) => String(r.tenant_id));
    },

    async insertCampaign(c, assignments) {
      await db.transaction(async (tx) => {
        await tx.run(
          `INSERT INTO ota_campaigns (tenant_id, id, name, release_id, target, plan, state, state_reason, wave, wave_count,
             approved_wave, failures_acknowledged, total, excluded, revision, created_by, created_at, updated_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
          [
            c.tenant,
            c.id,
            c.name,
            c.releaseId,
            JSON.stringify(c.target),
            JSON.stringify(c.plan),
            c.state,
            c.stateReason,
            c.wave,
            c.waveCount,
            c.approvedWave,
            c.failuresAcknowledged,
            c.total,
            c.excluded,
            c.revision,
            c.createdBy,
            c.createdAt,
            c.updatedAt,
          ],
        );
        const cols = 9;
        for (const part of chunks(assignments, Math.floor(900 / cols))) {
          const values = part.map(() => `(${placeholders(cols)})`).join(', ');
          await tx.run(
            `INSERT INTO ota_campaign_devices (tenant_id, campaign_id, device_id, wave, ord, state, reason, from_version, updated_at) VALUES ${values}`,
            part.flatMap((a) => [
              c.tenant,
              c.id,
              a.deviceId,
              a.wave,
              a.ord,
              a.state,
              a.reason,
              a.fromVersion,
              a.updatedAt,
            ]),
          );
        }
      });
    },
    async getCampaign(tenant, id) {
      const r = await db.get<Row>('SELECT * FROM ota_campaigns WHERE tenant_id = ? AND id = ?', [tenant, id]);
      return r && toCampaign(r);
    },
    async listCampaigns(tenant, { limit, before, state }) {
      const where = ['tenant_id = ?'];
      const params: SqlValue[] = [tenant];
      if (state !== undefined) {
        where.push('state = ?');
        params.push(state);
      }
      if (before !== undefined) {
        where.push('created_at < ?');
        params.push(before);
      }
      const rows = await db.all<Row>(
        `SELECT * FROM ota_campaigns WHERE ${where.join(' AND ')} ORDER BY created_at DESC, id LIMIT ?`,
        [...params, limit],
      );
      return rows.map(toCampaign);
    },
    async activeCampaigns() {
      const rows = await db.all<Row>(
        "SELECT tenant_id, id FROM ota_campaigns WHERE state IN ('running', 'awaiting-approval', 'paused') ORDER BY created_at",
      );
      return rows.map((r) => ({ tenant: String(r.tenant_id), id: String(r.id) }));
    },
    async updateCampaign(c, expectedRevision) {
      const r = await db.run(
        `UPDATE ota_campaigns SET state = ?, state_reason = ?, wave = ?, approved_wave = ?, failures_acknowledged = ?,
           revision = ?, updated_at = ? WHERE tenant_id = ? AND id = ? AND revision = ?`,
        [
          c.state,
          c.stateReason,
          c.wave,
          c.approvedWave,
          c.failuresAcknowledged,
          c.revision,
          c.updatedAt,
          c.tenant,
          c.id,
          expectedRevision,
        ],
      );
      return r.changes > 0;
    },
    async waveCounts(tenant, campaignId, wave) {
      const rows = await db.all<{ state: string; n: unknown }>(
        'SELECT state, COUNT(*) AS n FROM ota_campaign_devices WHERE tenant_id = ? AND campaign_id = ? AND wave = ? GROUP BY state',
        [tenant, campaignId, wave],
      );
      const c = { total: 0, pending: 0, active: 0, succeeded: 0, failed: 0, cancelled: 0 };
      for (const r of rows) {
        const n = num(r.n);
        const s = r.state as AssignmentState;
        c.total += n;
        if (s === 'pending') c.pending += n;
        else if (IN_PROGRESS.includes(s)) c.active += n;
        else if (s === 'succeeded') c.succeeded += n;
        else if (FAILED.includes(s)) c.failed += n;
        else if (s === 'cancelled') c.cancelled += n;
      }
      return c satisfies WaveCounts;
    },
    async countByState(tenant, campaignId) {
      const rows = await db.all<{ state: string; n: unknown }>(
        'SELECT state, COUNT(*) AS n FROM ota_campaign_devices WHERE tenant_id = ? AND campaign_id = ? GROUP BY state',
        [tenant, campaignId],
      );
      return Object.fromEntries(rows.map((r) => [r.state, num(r.n)]));
    },
    async countInProgress(tenant, campaignId) {
      const r = await db.get<{ n: unknown }>(
        `SELECT COUNT(*) AS n FROM ota_campaign_devices WHERE tenant_id = ? AND campaign_id = ? AND state IN (${placeholders(IN_PROGRESS.length)})`,
        [tenant, campaignId, ...IN_PROGRESS],
      );
      return num(r?.n ?? 0);
    },
    async countNotifiedSince(tenant, campaignId, since) {
      const r = await db.get<{ n: unknown }>(
        'SELECT COUNT(*) AS n FROM ota_campaign_devices WHERE tenant_id = ? AND campaign_id = ? AND notified_at >= ?',
        [tenant, campaignId, since],
      );
      return num(r?.n ?? 0);
    },
    async claimPending(tenant, campaignId, wave, limit, at) {
      if (limit <= 0) return [];
      return db.transaction(async (tx) => {
        const rows = await tx.all<Row>(
          "SELECT * FROM ota_campaign_devices WHERE tenant_id = ? AND campaign_id = ? AND wave = ? AND state = 'pending' ORDER BY ord LIMIT ?",
          [tenant, campaignId, wave, limit],
        );
        const claimed: Assignment[] = [];
        for (const part of chunks(rows, 500)) {
          const ids = part.map((r) => String(r.device_id));
          // Only rows still pending move: another node claiming the same devices gets the others.
          await tx.run(
            `UPDATE ota_campaign_devices SET state = 'notified', notified_at = ?, updated_at = ? WHERE tenant_id = ? AND campaign_id = ? AND state = 'pending' AND device_id IN (${placeholders(ids.length)})`,
            [at, at, tenant, campaignId, ...ids],
          );
          for (const r of part)
            claimed.push({ ...toAssignment(r), state: 'notified', notifiedAt: at, updatedAt: at });
        }
        return claimed;
      });
    },
    async getAssignment(tenant, campaignId, deviceId) {
      const r = await db.get<Row>(
        'SELECT * FROM ota_campaign_devices WHERE tenant_id = ? AND campaign_id = ? AND device_id = ?',
        [tenant, campaignId, deviceId],
      );
      return r && toAssignment(r);
    },
    async updateAssignment(tenant, campaignId, deviceId, from, patch, at) {
      const sets = ['state = ?', 'updated_at = ?'];
      const params: SqlValue[] = [patch.state, at];
      for (const [col, v] of [
        ['reason', patch.reason],
        ['version', patch.version],
        ['health', patch.health],
        ['progress', patch.progress],
      ] as const) {
        if (v === undefined) continue;
        sets.push(`${col} = ?`);
        params.push(v);
      }
      const r = await db.run(
        `UPDATE ota_campaign_devices SET ${sets.join(', ')} WHERE tenant_id = ? AND campaign_id = ? AND device_id = ? AND state IN (${placeholders(from.length)})`,
        [...params, tenant, campaignId, deviceId, ...from],
      );
      return r.changes > 0;
    },
    async listAssignments(tenant, campaignId, { limit, afterId, state, wave }) {
      const where = ['tenant_id = ?', 'campaign_id = ?'];
      const params: SqlValue[] = [tenant, campaignId];
      if (state !== undefined) {
        where.push('state = ?');
        params.push(state);
      }
      if (wave !== undefined) {
        where.push('wave = ?');
        params.push(wave);
      }
      if (afterId !== undefined) {
        where.push('device_id > ?');
        params.push(afterId);
      }
      const rows = await db.all<Row>(
        `SELECT * FROM ota_campaign_devices WHERE ${where.join(' AND ')} ORDER BY device_id LIMIT ?`,
        [...params, limit],
      );
      return rows.map(toAssignment);
    },
    async overdue(tenant, campaignId, before, limit) {
      const rows = await db.all<Row>(
        `SELECT * FROM ota_campaign_devices WHERE tenant_id = ? AND campaign_id = ? AND state IN (${placeholders(IN_PROGRESS.length)}) AND notified_at < ? ORDER BY notified_at LIMIT ?`,
        [tenant, campaignId, ...IN_PROGRESS, before, limit],
      );
      return rows.map(toAssignment);
    },
    async bulkState(tenant, campaignId, from, to, reason, at) {
      return db.transaction(async (tx) => {
        const rows = await tx.all<{ device_id: string }>(
          `SELECT device_id FROM ota_campaign_devices WHERE tenant_id = ? AND campaign_id = ? AND state IN (${placeholders(from.length)})`,
          [tenant, campaignId, ...from],
        );
        await tx.run(
          `UPDATE ota_campaign_devices SET state = ?, reason = ?, updated_at = ? WHERE tenant_id = ? AND campaign_id = ? AND state IN (${placeholders(from.length)})`,
          [to, reason, at, tenant, campaignId, ...from],
        );
        return rows.map((r) => String(r.device_id));
      });
    },
    async busyDevices(tenant, deviceIds, exceptCampaign) {
      const busy = new Set<string>();
      const open = ['pending', ...IN_PROGRESS];
      for (const part of chunks(deviceIds, 500)) {
        const rows = await db.all<{ device_id: string }>(
          `SELECT d.device_id FROM ota_campaign_devices d JOIN ota_campaigns c ON c.tenant_id = d.tenant_id AND c.id = d.campaign_id
           WHERE d.tenant_id = ? AND c.state IN ('running', 'awaiting-approval', 'paused') AND c.id <> ?
             AND d.state IN (${placeholders(open.length)}) AND d.device_id IN (${placeholders(part.length)})`,
          [tenant, exceptCampaign ?? '', ...open, ...part],
        );
        for (const r of rows) busy.add(String(r.device_id));
      }
      return busy;
    },
  };
}
