import { isUniqueViolation, type Db } from '../../kernel/index.ts';
import type {
  CaKind,
  CaRecord,
  CaStatus,
  CertificateKind,
  CertificateQuery,
  DeviceIdSource,
  ExternalCaRecord,
  ExternalCaStatus,
  KeyType,
  PkiStore,
  RevocationReason,
  StoredCertificate,
  StoredCertificateStatus,
} from './model.ts';

interface CaRow {
  id: string;
  tenant_id: string | null;
  kind: string;
  subject: string;
  serial: string;
  cert_pem: string;
  key_enc: string | null;
  not_before: number | string;
  not_after: number | string;
  status: string;
  created_at: number | string;
}

interface CertRow {
  serial: string;
  tenant_id: string;
  ca_id: string;
  device_id: string | null;
  kind: string;
  subject: string;
  sans: string;
  key_type: string;
  fingerprint256: string;
  not_before: number | string;
  not_after: number | string;
  pem: string;
  status: string;
  revoked_at: number | string | null;
  revocation_reason: string | null;
  created_at: number | string;
  fleet: string | null;
  enrolled_via: string | null;
}

interface ExternalCaRow {
  id: string;
  tenant_id: string;
  name: string;
  subject: string;
  fingerprint256: string;
  cert_pem: string;
  fleet: string;
  device_id_from: string;
  approval: number | string;
  not_before: number | string;
  not_after: number | string;
  status: string;
  created_at: number | string;
  updated_at: number | string;
}

const EXT_COLUMNS =
  'id, tenant_id, name, subject, fingerprint256, cert_pem, fleet, device_id_from, approval, not_before, not_after, status, created_at, updated_at';

function toExternalCa(r: ExternalCaRow): ExternalCaRecord {
  return {
    id: r.id,
    tenantId: r.tenant_id,
    name: r.name,
    subject: r.subject,
    fingerprint256: r.fingerprint256,
    certPem: r.cert_pem,
    fleet: r.fleet,
    deviceIdFrom: r.device_id_from as DeviceIdSource,
    approval: Number(r.approval) === 1,
    notBefore: Number(r.not_before),
    notAfter: Number(r.not_after),
    status: r.status as ExternalCaStatus,
    createdAt: Number(r.created_at),
    updatedAt: Number(r.updated_at),
  };
}

const CA_COLUMNS =
  'id, tenant_id, kind, subject, serial, cert_pem, key_enc, not_before, not_after, status, created_at';
const CERT_COLUMNS =
  'serial, tenant_id, ca_id, device_id, kind, subject, sans, key_type, fingerprint256, not_before, not_after, pem, status, revoked_at, revocation_reason, created_at, fleet, enrolled_via';

function toCa(r: CaRow): CaRecord {
  return {
    id: r.id,
    tenantId: r.tenant_id,
    kind: r.kind as CaKind,
    subject: r.subject,
    serial: r.serial,
    certPem: r.cert_pem,
    keyEnc: r.key_enc,
    notBefore: Number(r.not_before),
    notAfter: Number(r.not_after),
    status: r.status as CaStatus,
    createdAt: Number(r.created_at),
  };
}

function toCert(r: CertRow): StoredCertificate {
  return {
    serial: r.serial,
    tenantId: r.tenant_id,
    caId: r.ca_id,
    deviceId: r.device_id,
    kind: r.kind as CertificateKind,
    subject: r.subject,
    sans: JSON.parse(r.sans) as string[],
    keyType: r.key_type as KeyType,
    fingerprint256: r.fingerprint256,
    notBefore: Number(r.not_before),
    notAfter: Number(r.not_after),
    pem: r.pem,
    status: r.status as StoredCertificateStatus,
    revokedAt: r.revoked_at === null ? null : Number(r.revoked_at),
    revocationReason: r.revocation_reason as RevocationReason | null,
    createdAt: Number(r.created_at),
    fleet: r.fleet,
    enrolledVia: r.enrolled_via,
  };
}

/** PkiStore over the shared Db port: the same SQL for SQLite and PostgreSQL. */
export function createPkiStore(db: Db): PkiStore {
  return {
    async listActiveCas() {
      const rows = await db.all<CaRow>(
        `SELECT ${CA_COLUMNS} FROM cas WHERE status = ? ORDER BY created_at, id`,
        ['active'],
      );
      return rows.map(toCa);
    },

    async getCa(id) {
      const row = await db.get<CaRow>(`SELECT ${CA_COLUMNS} FROM cas WHERE id = ?`, [id]);
      return row ? toCa(row) : undefined;
    },

    async insertCa(ca) {
      try {
        await db.run(`INSERT INTO cas (${CA_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, [
          ca.id,
          ca.tenantId,
          ca.kind,
          ca.subject,
          ca.serial,
          ca.certPem,
          ca.keyEnc,
          ca.notBefore,
          ca.notAfter,
          ca.status,
          ca.createdAt,
        ]);
        return true;
      } catch (err) {
        if (isUniqueViolation(err)) return false;
        throw err;
      }
    },

    async insertCertificate(c) {
      await db.run(
        `INSERT INTO certificates (${CERT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        [
          c.serial,
          c.tenantId,
          c.caId,
          c.deviceId,
          c.kind,
          c.subject,
          JSON.stringify(c.sans),
          c.keyType,
          c.fingerprint256,
          c.notBefore,
          c.notAfter,
          c.pem,
          c.status,
          c.revokedAt,
          c.revocationReason,
          c.createdAt,
          c.fleet,
          c.enrolledVia,
        ],
      );
    },

    async getCertificate(tenantId, serial) {
      const row = await db.get<CertRow>(
        `SELECT ${CERT_COLUMNS} FROM certificates WHERE tenant_id = ? AND serial = ?`,
        [tenantId, serial],
      );
      return row ? toCert(row) : undefined;
    },

    async listCertificates(q: CertificateQuery) {
      const where: string[] = ['tenant_id = ?'];
      const params: (string | number)[] = [q.tenantId];
      if (q.deviceId !== undefined) {
        where.push('device_id = ?');
        params.push(q.deviceId);
      }
      if (q.caId !== undefined) {
        where.push('ca_id = ?');
        params.push(q.caId);
      }
      if (q.enrolledVia !== undefined) {
        where.push('enrolled_via = ?');
        params.push(q.enrolledVia);
      }
      if (q.fleet !== undefined) {
        // The fleet and everything nested under it (substr, not LIKE: `_` is a wildcard there).
        where.push('(fleet = ? OR substr(fleet, 1, ?) = ?)');
        params.push(q.fleet, q.fleet.length + 1, `${q.fleet}/`);
      }
      if (q.keyType !== undefined) {
        where.push('key_type = ?');
        params.push(q.keyType);
      }
      if (q.status === 'revoked') {
        where.push('status = ?');
        params.push('revoked');
      } else if (q.status === 'active') {
        where.push('status = ? AND not_after > ?');
        params.push('active', q.now);
      } else if (q.status === 'expired') {
        where.push('status = ? AND not_after <= ?');
        params.push('active', q.now);
      }
      if (q.expiringBefore !== undefined) {
        where.push('not_after < ?');
        params.push(q.expiringBefore);
      }
      if (q.after) {
        // A row value, so the index (tenant_id, created_at, serial) serves the page.
        where.push('(created_at, serial) > (?, ?)');
        params.push(q.after.createdAt, q.after.serial);
      }
      params.push(q.limit);
      const rows = await db.all<CertRow>(
        `SELECT ${CERT_COLUMNS} FROM certificates WHERE ${where.join(' AND ')} ORDER BY created_at, serial LIMIT ?`,
        params,
      );
      return rows.map(toCert);
    },

    async listActiveDeviceCertificates(tenantId, deviceId) {
      const rows = await db.all<CertRow>(
        `SELECT ${CERT_COLUMNS} FROM certificates WHERE tenant_id = ? AND device_id = ? AND status = ? ORDER BY created_at, serial`,
        [tenantId, deviceId, 'active'],
      );
      return rows.map(toCert);
    },

    async revokeCertificate(tenantId, serial, at, reason) {
      return db.transaction(async (tx) => {
        const { changes } = await tx.run(
          'UPDATE certificates SET status = ?, revoked_at = ?, revocation_reason = ? WHERE tenant_id = ? AND serial = ? AND status = ?',
          ['revoked', at, reason, tenantId, serial, 'active'],
        );
        if (changes === 0) return undefined;
        const row = await tx.get<CertRow>(
          `SELECT ${CERT_COLUMNS} FROM certificates WHERE tenant_id = ? AND serial = ?`,
          [tenantId, serial],
        );
        return row ? toCert(row) : undefined;
      });
    },

    async listRevokedByCa(caId, now) {
      const rows = await db.all<CertRow>(
        `SELECT ${CERT_COLUMNS} FROM certificates WHERE ca_id = ? AND status = ? AND not_after > ? ORDER BY revoked_at, serial`,
        [caId, 'revoked', now],
      );
      return rows.map(toCert);
    },

    async listRevoked(now) {
      return db.all<{ serial: string; fingerprint256: string }>(
        'SELECT serial, fingerprint256 FROM certificates WHERE status = ? AND not_after > ?',
        ['revoked', now],
      );
    },

    async listCas(tenantId) {
      const rows =
        tenantId === null
          ? await db.all<CaRow>(
              `SELECT ${CA_COLUMNS} FROM cas WHERE tenant_id IS NULL ORDER BY created_at, id`,
            )
          : await db.all<CaRow>(`SELECT ${CA_COLUMNS} FROM cas WHERE tenant_id = ? ORDER BY created_at, id`, [
              tenantId,
            ]);
      return rows.map(toCa);
    },

    async setCaStatus(id, status) {
      const { changes } = await db.run('UPDATE cas SET status = ? WHERE id = ? AND status = ?', [
        status,
        id,
        'active',
      ]);
      return changes > 0;
    },

    async revokeCertificatesOfCa(caId, at, reason) {
      const { changes } = await db.run(
        'UPDATE certificates SET status = ?, revoked_at = ?, revocation_reason = ? WHERE ca_id = ? AND status = ?',
        ['revoked', at, reason, caId, 'active'],
      );
      return changes;
    },

    async listActiveEnrolledVia(tenantId, enrolledVia) {
      const rows = await db.all<CertRow>(
        `SELECT ${CERT_COLUMNS} FROM certificates WHERE tenant_id = ? AND enrolled_via = ? AND status = ? ORDER BY created_at, serial`,
        [tenantId, enrolledVia, 'active'],
      );
      return rows.map(toCert);
    },

    async insertExternalCa(ca) {
      try {
        await db.run(
          `INSERT INTO external_cas (${EXT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
          [
            ca.id,
            ca.tenantId,
            ca.name,
            ca.subject,
            ca.fingerprint256,
            ca.certPem,
            ca.fleet,
            ca.deviceIdFrom,
            ca.approval ? 1 : 0,
            ca.notBefore,
            ca.notAfter,
            ca.status,
            ca.createdAt,
            ca.updatedAt,
          ],
        );
        return true;
      } catch (err) {
        if (isUniqueViolation(err)) return false;
        throw err;
      }
    },

    async getExternalCa(tenantId, id) {
      const row = await db.get<ExternalCaRow>(
        `SELECT ${EXT_COLUMNS} FROM external_cas WHERE tenant_id = ? AND id = ?`,
        [tenantId, id],
      );
      return row ? toExternalCa(row) : undefined;
    },

    async listExternalCas(tenantId) {
      const rows = await db.all<ExternalCaRow>(
        `SELECT ${EXT_COLUMNS} FROM external_cas WHERE tenant_id = ? ORDER BY created_at, id`,
        [tenantId],
      );
      return rows.map(toExternalCa);
    },

    async updateExternalCaStatus(tenantId, id, status, at) {
      const { changes } = await db.run(
        'UPDATE external_cas SET status = ?, updated_at = ? WHERE tenant_id = ? AND id = ?',
        [status, at, tenantId, id],
      );
      return changes > 0;
    },

    async deleteExternalCa(tenantId, id) {
      const { changes } = await db.run('DELETE FROM external_cas WHERE tenant_id = ? AND id = ?', [
        tenantId,
        id,
      ]);
      return changes > 0;
    },

    async insertRegistrationCode(code, tenantId, expiresAt) {
      await db.run('INSERT INTO ca_registration_codes (code, tenant_id, expires_at) VALUES (?, ?, ?)', [
        code,
        tenantId,
        expiresAt,
      ]);
    },

    async useRegistrationCode(code, tenantId, now) {
      const { changes } = await db.run(
        'UPDATE ca_registration_codes SET used_at = ? WHERE code = ? AND tenant_id = ? AND used_at IS NULL AND expires_at > ?',
        [now, code, tenantId, now],
      );
      return changes > 0;
    },
  };
}
