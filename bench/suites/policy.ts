// Policy engine at fleet scale, in process (no broker, no Mosquitto counterpart):
//  - decisions per second of one compiled device policy (publish, subscribe with a filter, delivery);
//  - effective-policy compile time per device with 1 000 000 registered devices (100 000 with --quick),
//    10 000 fleets 5 levels deep, policies attached at every level, static and dynamic groups, on a
//    SQLite file: with and without the placement lookup (device row + group memberships);
//  - propagation of a policy change to 10 000 live sessions (the MQTT transport's live-policy code over
//    sessions without sockets: mark the affected ones, then recompile and re-check their subscriptions).
import { performance } from 'node:perf_hooks';
import { join } from 'node:path';
import { openDatabase } from '../../apps/server/src/infra/database/index.ts';
import { fixedClock, type Db, type SqlValue } from '../../apps/server/src/kernel/index.ts';
import {
  createDeviceService,
  createDeviceStore,
  matchesQuery,
  parseQuery,
} from '../../apps/server/src/modules/devices/index.ts';
import {
  createPolicyService,
  createPolicyStore,
  resourceName,
  type Principal,
} from '../../apps/server/src/modules/policy/index.ts';
import { createLivePolicies, type LiveSession } from '../../apps/server/src/transport/mqtt/live-policy.ts';
import type { Suite, SuiteContext } from '../lib/types.ts';

const TENANT = 'bench';
/** CPU time of this process, ms: the machine may be shared, so rates are also given per CPU-second. */
const cpuMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};
const round = (x: number, d = 2) => Math.round(x * 10 ** d) / 10 ** d;

/** 10 000 fleets, 5 levels: 10 → 100 → 1 000 → 4 445 → 4 445 (every level-4 fleet but the last gets one child). */
function fleetTree(total: number): { paths: string[]; leaves: string[] } {
  const levels: string[][] = [[]];
  const l1 = Array.from({ length: 10 }, (_, i) => `site-${i}`);
  const l2 = l1.flatMap((p) => Array.from({ length: 10 }, (_, i) => `${p}/hall-${i}`));
  const l3 = l2.flatMap((p) => Array.from({ length: 10 }, (_, i) => `${p}/line-${i}`));
  const rest = total - 1110;
  const l4 = Array.from(
    { length: Math.ceil(rest / 2) },
    (_, i) => `${l3[i % l3.length]}/cell-${Math.floor(i / l3.length)}`,
  );
  const l5 = l4.slice(0, rest - l4.length).map((p) => `${p}/robots`);
  levels.push(l1, l2, l3, l4, l5);
  const leaves = [...l5, ...l4.slice(l5.length)];
  return { paths: levels.flat(), leaves };
}

async function insertMany(db: Db, table: string, columns: string[], rows: SqlValue[][]): Promise<void> {
  const per = Math.floor(900 / columns.length);
  await db.transaction(async (tx) => {
    for (let i = 0; i < rows.length; i += per) {
      const chunk = rows.slice(i, i + per);
      const values = chunk.map(() => `(${columns.map(() => '?').join(', ')})`).join(', ');
      await tx.run(`INSERT INTO ${table} (${columns.join(', ')}) VALUES ${values}`, chunk.flat());
    }
  });
}

const GROUP_QUERIES: Record<string, string> = {
  'hw-a': 'attr.hw = A',
  'hw-b': 'attr.hw = B',
  'fw-old': 'attr.fw < 2.4',
  'fw-new': 'attr.fw >= 3.0',
  cameras: 'attr.caps contains camera',
  gps: 'attr.caps contains gps',
  'site-0-b': 'fleet under site-0 and attr.hw = B',
};

const suite: Suite = {
  name: 'policy',
  description:
    'Policy engine: decisions/s of a compiled device policy, compile time per device with 1M devices / 10k fleets 5 levels deep / dynamic groups, propagation of a change to 10k live sessions',
  order: 90,
  async run(ctx: SuiteContext) {
    const devicesTotal = ctx.quick ? 100_000 : 1_000_000;
    const db = await openDatabase({ url: `sqlite:${join(ctx.tmpDir, 'policy-bench.db')}` });
    try {
      const clock = fixedClock(Date.UTC(2026, 0, 5, 12));
      const devices = createDeviceService({ store: createDeviceStore(db), clock });
      const policy = createPolicyService({
        store: createPolicyStore(db),
        clock,
        directory: {
          device: async () => undefined,
          devicesIn: async () => [],
          targetExists: async () => true,
          account: async () => undefined,
        },
      });
      await policy.load();
      const actor = { tenant: TENANT, id: 'bench' };

      // ---- setup -------------------------------------------------------------------------------------
      let t0 = performance.now();
      const { paths, leaves } = fleetTree(10_000);
      await insertMany(
        db,
        'fleets',
        ['tenant_id', 'path', 'parent', 'description', 'created_at', 'updated_at'],
        paths.map((p) => [TENANT, p, p.includes('/') ? p.slice(0, p.lastIndexOf('/')) : '', '', 0, 0]),
      );
      const groupNames = Object.keys(GROUP_QUERIES);
      await insertMany(
        db,
        'device_groups',
        ['tenant_id', 'name', 'kind', 'query', 'description', 'created_at', 'updated_at'],
        [
          ...groupNames.map((g) => [TENANT, g, 'dynamic', GROUP_QUERIES[g] as string, '', 0, 0]),
          [TENANT, 'pilot', 'static', null, '', 0, 0],
        ],
      );
      const queries = groupNames.map((g) => [g, parseQuery(GROUP_QUERIES[g] as string)] as const);
      const caps = ['camera', 'gps', 'camera,gps', 'lidar', ''];
      const batch = 50_000;
      let members = 0;
      for (let start = 0; start < devicesTotal; start += batch) {
        const rows: SqlValue[][] = [];
        const memberRows: SqlValue[][] = [];
        for (let i = start; i < Math.min(devicesTotal, start + batch); i++) {
          const id = `dev-${String(i).padStart(7, '0')}`;
          const attributes = {
            hw: i % 3 === 0 ? 'A' : 'B',
            fw: `${2 + (i % 3)}.${i % 7}.0`,
            caps: caps[i % caps.length] as string,
          };
          const fleet = leaves[i % leaves.length] as string;
          rows.push([TENANT, id, 'active', JSON.stringify(attributes), fleet, 0, 0]);
          for (const [g, q] of queries)
            if (matchesQuery(q, { id, status: 'active', fleet, attributes }))
              memberRows.push([TENANT, g, id, 0]);
          if (i % 100 === 0) memberRows.push([TENANT, 'pilot', id, 0]);
        }
        await insertMany(
          db,
          'devices',
          ['tenant_id', 'id', 'status', 'attributes', 'fleet', 'created_at', 'updated_at'],
          rows,
        );
        await insertMany(
          db,
          'group_members',
          ['tenant_id', 'group_name', 'device_id', 'added_at'],
          memberRows,
        );
        members += memberRows.length;
        if (start % 200_000 === 0) ctx.log(`policy: ${start + rows.length} devices inserted`);
      }
      // Policies at every level of the tree: 110 fleets (levels 1-2) with an allow, 1 000 (level 3) with a
      // deny, one per group, one for the tenant.
      const allowTopic = (sid: string, topic: string) => ({
        sid,
        effect: 'allow',
        actions: ['mqtt:publish', 'mqtt:subscribe', 'mqtt:receive'],
        resources: [`topic/${topic}`],
      });
      await policy.create(actor, {
        id: 'tenant-base',
        statements: [allowTopic('bcast', 'broadcast/${device.fleet}/#')],
      });
      await policy.attach(actor, 'tenant-base', { type: 'tenant', id: TENANT });
      for (const p of paths.filter((x) => x.split('/').length <= 2)) {
        const id = `f-${p.replace(/\//g, '.')}`;
        await policy.create(actor, { id, statements: [allowTopic('zone', `zones/${p}/+/\${device.id}/#`)] });
        await policy.attach(actor, id, { type: 'fleet', id: p });
      }
      for (const p of paths.filter((x) => x.split('/').length === 3)) {
        const id = `f-${p.replace(/\//g, '.')}`;
        await policy.create(actor, {
          id,
          statements: [
            {
              sid: 'no-admin',
              effect: 'deny',
              actions: ['mqtt:publish'],
              resources: [`topic/zones/${p}/admin/#`],
            },
          ],
        });
        await policy.attach(actor, id, { type: 'fleet', id: p });
      }
      for (const g of [...groupNames, 'pilot']) {
        await policy.create(actor, {
          id: `g-${g}`,
          statements: [allowTopic('grp', `groups/${g}/\${device.id}/#`)],
        });
        await policy.attach(actor, `g-${g}`, { type: 'group', id: g });
      }
      const setupSeconds = round((performance.now() - t0) / 1000, 1);
      ctx.log(
        `policy: setup ${setupSeconds} s (${devicesTotal} devices, ${paths.length} fleets, ${members} memberships)`,
      );

      const principalOf = async (id: string): Promise<Principal> => {
        const p = await devices.placement(TENANT, id);
        if (!p) throw new Error(`no device ${id}`);
        return {
          type: 'device',
          id,
          tenant: TENANT,
          fleet: p.device.fleet,
          groups: p.groups,
          attributes: p.device.attributes,
        };
      };

      // ---- decisions per second ----------------------------------------------------------------------
      const sample = await principalOf('dev-0000100'); // in pilot, a camera, 5 levels deep
      const compiled = policy.compileFor(sample, { context: { sourceIp: '10.0.0.1' } });
      const own = resourceName(TENANT, 'topic', 'devices/dev-0000100/telemetry');
      const other = resourceName(TENANT, 'topic', 'devices/dev-0000101/telemetry');
      const zone = resourceName(
        TENANT,
        'topic',
        `zones/${sample.type === 'device' ? (sample.fleet ?? '').split('/').slice(0, 2).join('/') : ''}/x/dev-0000100/a`,
      );
      const filter = resourceName(TENANT, 'topic', 'devices/dev-0000100/+/config');
      const checks: [string, string, string, boolean][] = [
        ['publish own topic (allow)', 'mqtt:publish', own, true],
        ['publish other device (deny)', 'mqtt:publish', other, false],
        ['publish inherited fleet topic (allow)', 'mqtt:publish', zone, true],
        ['subscribe filter (allow)', 'mqtt:subscribe', filter, true],
        ['receive (allow)', 'mqtt:receive', own, true],
      ];
      const decisions: Record<string, { perSecond: number; perCpuSecond: number }> = {};
      const n = ctx.quick ? 500_000 : 5_000_000;
      const measure = (name: string, action: string, resources: readonly string[], want: boolean) => {
        for (const r of resources)
          if (compiled.allows(action, r) !== want) throw new Error(`bench policy broken: ${name}`);
        for (let i = 0; i < 100_000; i++) compiled.allows(action, resources[i % resources.length] as string); // warm-up
        const t = performance.now();
        const c = cpuMs();
        let yes = 0;
        for (let i = 0; i < n; i++)
          if (compiled.allows(action, resources[i % resources.length] as string)) yes++;
        const wall = (performance.now() - t) / 1000;
        const cpu = (cpuMs() - c) / 1000;
        if (yes !== (want ? n : 0)) throw new Error('inconsistent');
        decisions[name] = { perSecond: Math.round(n / wall), perCpuSecond: Math.round(n / cpu) };
      };
      // The same topic again and again (a device's telemetry): the per-policy memo answers.
      for (const [name, action, resource, want] of checks) measure(name, action, [resource], want);
      // 4 096 distinct topics in turn, more than the memo holds: every decision walks the tries.
      const distinct = Array.from({ length: 4096 }, (_, i) =>
        resourceName(TENANT, 'topic', `devices/dev-0000100/telemetry/s${i}`),
      );
      measure('publish, 4096 distinct topics (no memo)', 'mqtt:publish', distinct, true);
      ctx.figure({
        name: 'policy: decisions/s, compiled device policy (publish own topic)',
        unit: 'decisions/s',
        bulwark: decisions['publish own topic (allow)']?.perCpuSecond ?? null,
        mosquitto: null,
        better: 'higher',
        note: 'per CPU-second, in process; no Mosquitto counterpart',
      });
      ctx.figure({
        name: 'policy: decisions/s, 4096 distinct topics (no memo)',
        unit: 'decisions/s',
        bulwark: decisions['publish, 4096 distinct topics (no memo)']?.perCpuSecond ?? null,
        mosquitto: null,
        better: 'higher',
        note: 'per CPU-second, in process',
      });

      // ---- compile time per device ------------------------------------------------------------------
      ctx.log('policy: compiling the effective policy of 10 000 devices');
      const ids = Array.from(
        { length: 10_000 },
        (_, i) => `dev-${String((i * 7919) % devicesTotal).padStart(7, '0')}`,
      );
      for (const id of ids.slice(0, 1000)) policy.compileFor(await principalOf(id)); // warm-up
      const principals: Principal[] = [];
      t0 = performance.now();
      let c0 = cpuMs();
      for (const id of ids) principals.push(await principalOf(id));
      const lookupMs = performance.now() - t0;
      const lookupCpuMs = cpuMs() - c0;
      t0 = performance.now();
      c0 = cpuMs();
      let docs = 0;
      for (const p of principals) docs += policy.compileFor(p).documents.length;
      const compileMs = performance.now() - t0;
      const compileCpuMs = cpuMs() - c0;
      const compileUs = round((compileMs * 1000) / ids.length);
      const withLookupUs = round(((compileMs + lookupMs) * 1000) / ids.length);
      const compileCpuUs = round((compileCpuMs * 1000) / ids.length);
      const withLookupCpuUs = round(((compileCpuMs + lookupCpuMs) * 1000) / ids.length);
      ctx.figure({
        name: 'policy: compile per device, CPU (placement lookup + compile)',
        unit: 'µs',
        bulwark: withLookupCpuUs,
        mosquitto: null,
        better: 'lower',
      });

      // ---- propagation to 10 000 live sessions ------------------------------------------------------
      // The MQTT transport's own code (transport/mqtt/live-policy.ts) over 10 000 sessions without
      // sockets: a change marks the sessions it concerns (from then on their next message is decided by
      // the new policy) and a sweep recompiles them in slices and re-checks their subscriptions.
      ctx.log('policy: propagating changes to 10 000 simulated sessions');
      interface Session extends LiveSession {
        granted: Set<string>;
      }
      let dropped = 0;
      const live = createLivePolicies<Session>({
        policy,
        placement: (_tenant, id) => principalOf(id),
        subscriptions: (s) => [...s.granted],
        unsubscribe(s, filters) {
          for (const f of filters) s.granted.delete(f);
          dropped += filters.length;
        },
        revoke() {},
        failed(_s, err) {
          throw err;
        },
      });
      const context = { sourceIp: '10.0.0.1' };
      const sessions = principals.map((subject): Session => {
        const s: Session = {
          tenant: TENANT,
          deviceId: subject.id,
          context,
          subject,
          policy: policy.compileFor(subject, { context }),
          stale: false,
          placementGeneration: 0,
          granted: new Set([
            `devices/${subject.id}/commands`,
            `broadcast/${subject.type === 'device' ? subject.fleet : ''}/#`,
          ]),
        };
        live.add(s);
        return s;
      });
      let marked = 0;
      const off = policy.onChange((change) => {
        marked += live.apply(change);
      });
      const propagation = async (label: string, change: () => Promise<unknown>) => {
        marked = 0;
        dropped = 0;
        const start = performance.now();
        const c = cpuMs();
        let enforcedMs = 0;
        const offFirst = policy.onChange(() => {
          // Runs after the transport's listener: every concerned session now decides with the new policy.
          enforcedMs = performance.now() - start;
        });
        await change();
        offFirst();
        await live.settled();
        return {
          change: label,
          enforcedMs: round(enforcedMs, 1),
          ms: round(performance.now() - start, 1),
          cpuMs: round(cpuMs() - c, 1),
          sessions: marked,
          stale: sessions.filter((s) => s.stale).length,
          dropped,
        };
      };
      const results = [
        await propagation('tenant policy tightened (every session)', () =>
          policy.update(actor, 'tenant-base', {
            statements: [
              { sid: 'bcast', effect: 'deny', actions: ['mqtt:subscribe'], resources: ['topic/broadcast/#'] },
            ],
          }),
        ),
        await propagation('level-1 fleet policy edited (a tenth)', () =>
          policy.update(actor, 'f-site-3', { statements: [allowTopic('zone', 'zones/site-3/#')] }),
        ),
        await propagation('one device quarantined', () =>
          policy.notify({
            tenant: TENANT,
            scope: { kind: 'devices', ids: [principals[0]?.id ?? ''] },
            reason: 'device.quarantine',
            placementChanged: true,
          }),
        ),
      ];
      off();
      const tenantWide = results[0];
      if (tenantWide?.dropped !== sessions.length) throw new Error('bench policy broken: nothing dropped');
      ctx.figure({
        name: 'policy: change enforced on 10 000 live sessions',
        unit: 'ms',
        bulwark: tenantWide.enforcedMs,
        mosquitto: null,
        better: 'lower',
        note: 'wall clock until every concerned session decides its next message with the new policy',
      });
      ctx.figure({
        name: 'policy: change fully applied to 10 000 live sessions',
        unit: 'ms',
        bulwark: tenantWide.ms,
        mosquitto: null,
        better: 'lower',
        note: 'wall clock until every session is recompiled and its forbidden subscriptions removed (sweep in 5 ms slices)',
      });

      return {
        setup: {
          devices: devicesTotal,
          fleets: paths.length,
          fleetDepth: 5,
          groupMemberships: members,
          dynamicGroups: groupNames.length,
          policies: policy.list(TENANT).length,
          setupSeconds,
        },
        decisionsPerSecond: decisions,
        compile: {
          devices: ids.length,
          documentsPerDevice: round(docs / ids.length, 1),
          compileOnlyMicrosPerDevice: compileUs,
          withPlacementLookupMicrosPerDevice: withLookupUs,
          compileOnlyCpuMicrosPerDevice: compileCpuUs,
          withPlacementLookupCpuMicrosPerDevice: withLookupCpuUs,
        },
        propagation: results,
      };
    } finally {
      await db.close();
    }
  },
};

export default suite;
