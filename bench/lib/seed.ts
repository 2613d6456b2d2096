// Bulk seeding of a platform database that the platform itself created (its migrations ran, its tenant
// exists): registered devices spread over fleets, and telemetry history for some of them. Rows are made
// by the database in one statement per chunk (recursive CTE on SQLite, generate_series on PostgreSQL),
// in the tables and columns of apps/server/migrations, so the real API serves them unchanged.
import { DatabaseSync } from 'node:sqlite';
import pg from 'pg';

export interface SeedPlan {
  tenant: string;
  devices: number;
  fleets: number;
  telemetryRows: number;
  /** Telemetry rows per device that has history; devices/(rows/rowsPerDevice) apart, so every fleet has some. */
  rowsPerDevice: number;
  /** created_at of device 0 (device i: base + i), epoch ms. */
  baseMs: number;
  /** Time of the first telemetry row of each device; one row a minute after it. */
  telemetryStartMs: number;
}

export const ROW_INTERVAL_MS = 60_000;

export const deviceId = (i: number) => `dev-${String(i).padStart(7, '0')}`;
export const fleetPath = (f: number) => `plant-${String(f).padStart(2, '0')}`;
export const activeDevices = (p: SeedPlan) => Math.floor(p.telemetryRows / p.rowsPerDevice);
/** Index of the k-th device with telemetry. */
export const activeDevice = (p: SeedPlan, k: number) => k * Math.floor(p.devices / activeDevices(p));

const CHUNK = 1_000_000;
/** node:sqlite binds a JS number as REAL: integer arithmetic (i / n) needs INTEGER parameters. */
const int = (n: number) => BigInt(n);

function check(p: SeedPlan): void {
  if (p.devices > 9_999_999 || p.fleets > 100 || p.fleets < 1) throw new Error('seed plan out of range');
  if (p.telemetryRows % p.rowsPerDevice !== 0)
    throw new Error('telemetryRows must be a multiple of rowsPerDevice');
  if (activeDevices(p) > p.devices) throw new Error('more devices with telemetry than devices');
}

export interface SeedProgress {
  (what: string, done: number, total: number): void;
}

/** Seeds the SQLite file at `path` (the platform must not be running). Returns seconds per table. */
export function seedSqlite(path: string, p: SeedPlan, progress: SeedProgress): Record<string, number> {
  check(p);
  const db = new DatabaseSync(path);
  const seconds: Record<string, number> = {};
  try {
    // The seeding's own durability does not matter (a crash means seeding again); the platform sets its
    // own pragmas when it opens the file.
    db.exec('PRAGMA synchronous = OFF; PRAGMA cache_size = -262144;');
    let t0 = performance.now();
    db.exec('BEGIN');
    const fleet = db.prepare(
      'INSERT INTO fleets (tenant_id, path, parent, description, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)',
    );
    for (let f = 0; f < p.fleets; f++)
      fleet.run(p.tenant, fleetPath(f), '', 'seeded', int(p.baseMs), int(p.baseMs));
    const devices = db.prepare(
      `WITH RECURSIVE s(i) AS (SELECT ? UNION ALL SELECT i + 1 FROM s WHERE i < ?)
       INSERT INTO devices (tenant_id, id, status, attributes, fleet, created_at, updated_at)
       SELECT ?, printf('dev-%07d', i), 'active', printf('{"model":"m%d","site":"s%d"}', i % 7, i % 13),
              printf('plant-%02d', i % ?), ? + i, ? + i
       FROM s`,
    );
    for (let lo = 0; lo < p.devices; lo += CHUNK) {
      const hi = Math.min(p.devices, lo + CHUNK) - 1;
      devices.run(int(lo), int(hi), p.tenant, int(p.fleets), int(p.baseMs), int(p.baseMs));
      progress('devices', hi + 1, p.devices);
    }
    db.exec('COMMIT');
    seconds.devices = (performance.now() - t0) / 1000;

    // Rows device by device, oldest first: the order of the (tenant_id, device_id, ts, id) index, so
    // every insert appends to it.
    t0 = performance.now();
    const step = Math.floor(p.devices / activeDevices(p));
    const telemetry = db.prepare(
      `WITH RECURSIVE s(i) AS (SELECT ? UNION ALL SELECT i + 1 FROM s WHERE i < ?)
       INSERT INTO telemetry (tenant_id, device_id, stream, ts, data)
       SELECT ?, printf('dev-%07d', (i / ?) * ?), '', ? + (i % ?) * ?,
              printf('{"temperature":%.1f,"battery":%d}', 15 + (i % 200) / 10.0, 100 - i % 100)
       FROM s`,
    );
    db.exec('BEGIN');
    for (let lo = 0; lo < p.telemetryRows; lo += CHUNK) {
      const hi = Math.min(p.telemetryRows, lo + CHUNK) - 1;
      telemetry.run(
        int(lo),
        int(hi),
        p.tenant,
        int(p.rowsPerDevice),
        int(step),
        int(p.telemetryStartMs),
        int(p.rowsPerDevice),
        int(ROW_INTERVAL_MS),
      );
      progress('telemetry rows', hi + 1, p.telemetryRows);
    }
    db.exec('COMMIT');
    seconds.telemetry = (performance.now() - t0) / 1000;
    db.exec('PRAGMA wal_checkpoint(TRUNCATE)');
  } finally {
    db.close();
  }
  return seconds;
}

/** Query plans of the statements the measured routes run (SQLite), for the results file. */
export function sqlitePlans(
  path: string,
  p: SeedPlan,
  queries: readonly PlannedQuery[],
): Record<string, string> {
  const db = new DatabaseSync(path, { readOnly: true });
  try {
    const out: Record<string, string> = {};
    for (const q of queries) {
      const params = q.params(p).map((v) => (typeof v === 'number' ? int(v) : v));
      const rows = db.prepare(`EXPLAIN QUERY PLAN ${q.sql}`).all(...params) as { detail: string }[];
      out[q.name] = rows.map((r) => r.detail).join('; ');
    }
    return out;
  } finally {
    db.close();
  }
}

export interface PlannedQuery {
  name: string;
  /** With `?` placeholders (turned into $n for PostgreSQL). */
  sql: string;
  params(p: SeedPlan): (string | number)[];
}

/** The statements behind the measured routes (the stores' own SQL, with typical parameters). */
export const MEASURED_QUERIES: readonly PlannedQuery[] = [
  {
    name: 'device lookup',
    sql: 'SELECT * FROM devices WHERE tenant_id = ? AND id = ?',
    params: (p) => [p.tenant, deviceId(Math.floor(p.devices / 2))],
  },
  {
    name: 'fleet listing',
    sql: 'SELECT * FROM devices WHERE tenant_id = ? AND fleet = ? AND (created_at, id) > (?, ?) ORDER BY created_at, id LIMIT ?',
    params: (p) => {
      const i = Math.floor(p.devices / 2);
      return [p.tenant, fleetPath(i % p.fleets), p.baseMs + i, deviceId(i), 101];
    },
  },
  {
    name: 'telemetry latest',
    sql: 'SELECT id, ts, stream, data AS json FROM telemetry WHERE tenant_id = ? AND device_id = ? AND ts >= ? AND ts <= ? ORDER BY ts DESC, id DESC LIMIT ?',
    params: (p) => [p.tenant, deviceId(activeDevice(p, 1)), 0, Date.now(), 101],
  },
];

const pgSql = (sql: string) => {
  let n = 0;
  return sql.replace(/\?/g, () => `$${++n}`);
};

/** Seeds the PostgreSQL database at `url` (the platform must not be running). */
export async function seedPostgres(
  url: string,
  p: SeedPlan,
  progress: SeedProgress,
): Promise<Record<string, number>> {
  check(p);
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  const seconds: Record<string, number> = {};
  try {
    await client.query('SET synchronous_commit = off');
    await client.query("SET maintenance_work_mem = '256MB'");
    let t0 = performance.now();
    await client.query('BEGIN');
    for (let f = 0; f < p.fleets; f++) {
      await client.query(
        'INSERT INTO fleets (tenant_id, path, parent, description, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5)',
        [p.tenant, fleetPath(f), '', 'seeded', p.baseMs],
      );
    }
    for (let lo = 0; lo < p.devices; lo += CHUNK) {
      const hi = Math.min(p.devices, lo + CHUNK) - 1;
      await client.query(
        `INSERT INTO devices (tenant_id, id, status, attributes, fleet, created_at, updated_at)
         SELECT $1, 'dev-' || lpad(i::text, 7, '0'), 'active',
                '{"model":"m' || (i % 7) || '","site":"s' || (i % 13) || '"}',
                'plant-' || lpad((i % $4)::text, 2, '0'), $5::bigint + i, $5::bigint + i
         FROM generate_series($2::bigint, $3::bigint) AS i`,
        [p.tenant, lo, hi, p.fleets, p.baseMs],
      );
      progress('devices', hi + 1, p.devices);
    }
    await client.query('COMMIT');
    seconds.devices = (performance.now() - t0) / 1000;

    t0 = performance.now();
    const step = Math.floor(p.devices / activeDevices(p));
    for (let lo = 0; lo < p.telemetryRows; lo += CHUNK) {
      const hi = Math.min(p.telemetryRows, lo + CHUNK) - 1;
      await client.query(
        `INSERT INTO telemetry (tenant_id, device_id, stream, ts, data)
         SELECT $1, 'dev-' || lpad(((i / $4) * $5)::text, 7, '0'), '', $6::bigint + (i % $4) * $7,
                '{"temperature":' || to_char(15 + (i % 200) / 10.0, 'FM990.0') || ',"battery":' || (100 - i % 100) || '}'
         FROM generate_series($2::bigint, $3::bigint) AS i`,
        [p.tenant, lo, hi, p.rowsPerDevice, step, p.telemetryStartMs, ROW_INTERVAL_MS],
      );
      progress('telemetry rows', hi + 1, p.telemetryRows);
    }
    seconds.telemetry = (performance.now() - t0) / 1000;
    // What autovacuum would do soon after a bulk load anyway; measured queries then see real statistics.
    t0 = performance.now();
    await client.query('VACUUM ANALYZE devices');
    await client.query('VACUUM ANALYZE telemetry');
    seconds.analyze = (performance.now() - t0) / 1000;
  } finally {
    await client.end();
  }
  return seconds;
}

export async function postgresPlans(
  url: string,
  p: SeedPlan,
  queries: readonly PlannedQuery[],
): Promise<Record<string, string>> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const out: Record<string, string> = {};
    for (const q of queries) {
      const r = await client.query<{ 'QUERY PLAN': string }>(`EXPLAIN ${pgSql(q.sql)}`, q.params(p));
      out[q.name] = r.rows.map((x) => x['QUERY PLAN'].trim()).join('; ');
    }
    return out;
  } finally {
    await client.end();
  }
}

/** A database of its own on the PostgreSQL server of `adminUrl`; drop() removes it. */
export async function scratchDatabase(
  adminUrl: string,
  name: string,
): Promise<{ url: string; drop(): Promise<void> }> {
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(name)) throw new Error(`invalid database name ${name}`);
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const u = new URL(adminUrl);
  u.pathname = `/${name}`;
  return {
    url: u.href,
    async drop() {
      const c = new pg.Client({ connectionString: adminUrl });
      await c.connect();
      try {
        await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await c.end();
      }
    },
  };
}
