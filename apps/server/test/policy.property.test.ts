// Property-based tests: random topics, filters, policy sets, principals and contexts. The compiled engine
// (tries, compile-time conditions) and its explain path must agree with a reference evaluator written
// straight from the rules in docs/policies.md, with topic semantics defined by enumeration over a finite
// universe of topics rather than by a second matching algorithm.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { BlockList, isIPv4 } from 'node:net';
import {
  compile,
  createPolicyService,
  type AuthorizeContext,
  type Conditions,
  type PolicyDocument,
  type Principal,
  type Statement,
} from '../src/modules/policy/index.ts';
import { fixedClock } from '../src/kernel/index.ts';

/** mulberry32: small, seeded, good enough to explore. */
function rng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number) => Math.floor(next() * n);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)] as T;
  const chance = (p: number) => next() < p;
  return { int, pick, chance };
}
type Rng = ReturnType<typeof rng>;

// ---- the reference evaluator ----------------------------------------------------------------------------

// Every topic of 1..5 levels over {a, b, c, x}: generated filters use at most 4 levels of {a, b, c, +}
// (plus #), so any difference between two of them shows on a topic of this universe.
const VOCAB = ['a', 'b', 'c', 'x'];
const UNIVERSE: string[] = [];
for (let depth = 1; depth <= 5; depth++) {
  const build = (prefix: string[]): void => {
    if (prefix.length === depth) {
      UNIVERSE.push(prefix.join('/'));
      return;
    }
    for (const v of VOCAB) build([...prefix, v]);
  };
  build([]);
}

/** Regex for an MQTT filter, written from the spec: + one level, # any remaining levels incl. none. */
function filterRegex(filter: string): RegExp {
  const levels = filter.split('/');
  let re = '';
  levels.forEach((l, i) => {
    if (l === '#') re += i === 0 ? '.*' : '(/.*)?';
    else re += (i === 0 ? '' : '/') + (l === '+' ? '[^/]*' : l.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
  });
  return new RegExp(`^${re}$`);
}
const sets = new Map<string, Uint8Array>();
function topicSet(filter: string): Uint8Array {
  let s = sets.get(filter);
  if (!s) {
    const re = filterRegex(filter);
    s = Uint8Array.from(UNIVERSE, (t) => (re.test(t) ? 1 : 0));
    sets.set(filter, s);
  }
  return s;
}
const refCovers = (outer: string, inner: string) => {
  const o = topicSet(outer);
  return topicSet(inner).every((v, i) => v === 0 || o[i] === 1);
};
const refOverlaps = (a: string, b: string) => {
  const x = topicSet(a);
  return topicSet(b).some((v, i) => v === 1 && x[i] === 1);
};

function refVariables(p: Principal): Map<string, string> {
  const m = new Map<string, string>([
    ['principal.id', p.id],
    ['principal.tenant', p.tenant],
    ['principal.type', p.type],
  ]);
  if (p.type === 'device') {
    m.set('device.id', p.id);
    m.set('device.tenant', p.tenant);
    if (p.fleet) m.set('device.fleet', p.fleet);
    for (const [k, v] of Object.entries(p.attributes ?? {})) m.set(`device.attr.${k}`, v);
  }
  return m;
}

/** undefined when a variable is missing or its value could widen the pattern. */
function refSubstitute(pattern: string, vars: Map<string, string>): string | undefined {
  let ok = true;
  const out = pattern.replace(/\$\{([^}]*)\}/g, (_m, name: string) => {
    const v = vars.get(name);
    const multiLevel = name === 'device.fleet';
    if (v === undefined || v === '' || /[+#*\0]/.test(v) || (!multiLevel && v.includes('/'))) ok = false;
    return v ?? '';
  });
  return ok ? out : undefined;
}

function refResourceHit(pattern: string, resource: string, mode: 'allow' | 'deny'): boolean {
  const pt = /^bulwark:([^:]*):topic\/(.*)$/s.exec(pattern);
  const rt = /^bulwark:([^:]*):topic\/(.*)$/s.exec(resource);
  if (pt) {
    if (!rt) return false;
    const tenantRe = new RegExp(
      `^${(pt[1] ?? '')
        .split('*')
        .map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
        .join('.*')}$`,
    );
    if (!tenantRe.test(rt[1] ?? '')) return false;
    const f = pt[2] ?? '';
    const r = rt[2] ?? '';
    if (!/[+#]/.test(r)) return filterRegex(f).test(r);
    return mode === 'allow' ? refCovers(f, r) : refOverlaps(f, r);
  }
  const re = new RegExp(
    `^${pattern
      .split('*')
      .map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
      .join('.*')}$`,
    's',
  );
  return re.test(resource);
}

function refConditions(c: Conditions, p: Principal, ctx: AuthorizeContext, deny: boolean): boolean {
  if (c.deviceAttr) {
    if (p.type !== 'device') {
      if (!deny) return false;
    } else {
      for (const [k, vals] of Object.entries(c.deviceAttr)) {
        const v = p.attributes?.[k];
        if (v === undefined || !vals.includes(v)) return false;
      }
    }
  }
  if (c.sourceIp || c.notSourceIp) {
    if (ctx.sourceIp === undefined) {
      if (!deny) return false;
    } else {
      const inList = (cidrs: readonly string[]) => {
        const bl = new BlockList();
        for (const x of cidrs) {
          const [net, len] = x.split('/');
          bl.addSubnet(net as string, Number(len), isIPv4(net as string) ? 'ipv4' : 'ipv6');
        }
        return bl.check(ctx.sourceIp as string, isIPv4(ctx.sourceIp as string) ? 'ipv4' : 'ipv6');
      };
      if (c.sourceIp && !inList(c.sourceIp)) return false;
      if (c.notSourceIp && inList(c.notSourceIp)) return false;
    }
  }
  if (c.mfa !== undefined && (ctx.mfa ?? false) !== c.mfa) return false;
  if (c.timeWindow) {
    const d = new Date(ctx.now as number);
    const m = d.getUTCHours() * 60 + d.getUTCMinutes();
    const [fh, fm] = c.timeWindow.from.split(':').map(Number);
    const [th, tm] = c.timeWindow.to.split(':').map(Number);
    const from = (fh as number) * 60 + (fm as number);
    const to = (th as number) * 60 + (tm as number);
    const inside = from < to ? m >= from && m < to : m >= from || m < to;
    if (!inside) return false;
    if (c.timeWindow.days) {
      const started = from < to || m >= from ? d : new Date(d.getTime() - 86_400_000);
      const day = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'][started.getUTCDay()] as string;
      if (!c.timeWindow.days.includes(day)) return false;
    }
  }
  return true;
}

function refActionHit(patterns: readonly string[], action: string): boolean {
  return patterns.some(
    (p) => p === '*' || p === action || (p.endsWith(':*') && action.startsWith(p.slice(0, -1))),
  );
}

interface RefMatch {
  policy: string;
  statement: number;
  effect: 'allow' | 'deny';
}

function reference(
  p: Principal,
  docs: readonly PolicyDocument[],
  action: string,
  resource: string,
  ctx: AuthorizeContext,
): { allowed: boolean; matched: RefMatch[] } {
  const vars = refVariables(p);
  const denies: RefMatch[] = [];
  const allows: RefMatch[] = [];
  for (const d of docs) {
    d.statements.forEach((st, statement) => {
      if (!refActionHit(st.actions, action)) return;
      const deny = st.effect === 'deny';
      if (st.conditions && !refConditions(st.conditions, p, ctx, deny)) return;
      let hit: boolean;
      if (st.notResources) {
        const exempt = st.notResources
          .map((r) => refSubstitute(r, vars))
          .some((r) => r !== undefined && refResourceHit(r, resource, 'allow'));
        hit = !exempt;
      } else {
        hit = (st.resources ?? [])
          .map((r) => refSubstitute(r, vars))
          .some((r) => r !== undefined && refResourceHit(r, resource, deny ? 'deny' : 'allow'));
      }
      if (hit) (deny ? denies : allows).push({ policy: d.id, statement, effect: st.effect });
    });
  }
  return denies.length > 0
    ? { allowed: false, matched: denies }
    : { allowed: allows.length > 0, matched: allows };
}

// ---- generators -----------------------------------------------------------------------------------------

const ACTIONS_USED = ['mqtt:publish', 'mqtt:subscribe', 'mqtt:receive', 'mqtt:connect', 'devices:read'];

function genFilter(r: Rng, maxLevels = 3): string {
  if (r.chance(0.05)) return '#';
  const n = 1 + r.int(maxLevels);
  const levels = Array.from({ length: n }, () => r.pick(['a', 'b', 'c', '+', 'a', 'b']));
  if (r.chance(0.25)) levels.push('#');
  return levels.join('/');
}

function genTopicPattern(r: Rng): string {
  const tenant = r.pick(['${device.tenant}', '${device.tenant}', 't1', 't2', 't*']);
  const filter = r.chance(0.3)
    ? `${r.pick(['${device.id}', '${device.attr.site}', '${device.fleet}', '${device.attr.none}'])}/${genFilter(r, 2)}`
    : genFilter(r);
  return `bulwark:${tenant}:topic/${filter}`;
}

function genStatement(r: Rng): Statement {
  const effect = r.chance(0.35) ? 'deny' : 'allow';
  const actions = Array.from({ length: 1 + r.int(2) }, () =>
    r.pick([...ACTIONS_USED, 'mqtt:*', '*', 'mqtt:publish', 'mqtt:subscribe']),
  );
  const patterns = Array.from({ length: 1 + r.int(3) }, () =>
    r.chance(0.8)
      ? genTopicPattern(r)
      : r.pick(['bulwark:t1:device/*', 'bulwark:${device.tenant}:*', 'bulwark:t1:client/${device.id}', '*']),
  );
  const conditions: Conditions | undefined = r.chance(0.25)
    ? r.pick<Conditions>([
        { sourceIp: ['10.0.0.0/8'] },
        { notSourceIp: ['10.0.0.0/8', '2001:db8::/32'] },
        { deviceAttr: { site: ['a'] } },
        { timeWindow: { from: '22:00', to: '06:00', days: ['mon', 'tue'] } },
        { timeWindow: { from: '08:00', to: '18:00' } },
        { mfa: true },
      ])
    : undefined;
  const notResources = effect === 'deny' && r.chance(0.3);
  return {
    effect,
    actions,
    ...(notResources ? { notResources: patterns } : { resources: patterns }),
    ...(conditions ? { conditions } : {}),
  };
}

function genDocs(r: Rng): PolicyDocument[] {
  return Array.from({ length: 1 + r.int(3) }, (_, i) => ({
    id: `p${i}`,
    statements: Array.from({ length: 1 + r.int(4) }, () => genStatement(r)),
  }));
}

function genPrincipal(r: Rng): Principal {
  const site = r.pick(['a', 'b', '#', 'a/b', undefined]);
  return {
    type: 'device',
    id: r.pick(['a', 'b']),
    tenant: 't1',
    fleet: r.pick(['', 'a', 'a/b']),
    groups: [],
    attributes: site === undefined ? {} : { site },
  };
}

function genRequest(r: Rng): { action: string; resource: string } {
  const action = r.pick(ACTIONS_USED);
  const tenant = r.pick(['t1', 't1', 't2']);
  if (r.chance(0.1)) return { action, resource: r.pick(['bulwark:t1:device/x', 'bulwark:t1:client/a']) };
  const topic =
    action === 'mqtt:subscribe' && r.chance(0.6)
      ? genFilter(r, 4)
      : Array.from({ length: 1 + r.int(4) }, () => r.pick(['a', 'b', 'c', 'x'])).join('/');
  return { action, resource: `bulwark:${tenant}:topic/${topic}` };
}

function genContext(r: Rng): AuthorizeContext {
  return {
    ...(r.chance(0.8)
      ? { sourceIp: r.pick(['10.1.2.3', '192.168.1.9', '::ffff:10.9.9.9', '2001:db8::5']) }
      : {}),
    ...(r.chance(0.3) ? { mfa: r.chance(0.5) } : {}),
    now: Date.UTC(2026, 0, 5 + r.int(7), r.int(24), r.int(60)),
  };
}

const key = (m: { policy: string; statement: number; effect: string }) =>
  `${m.policy}#${m.statement}:${m.effect}`;

describe('policy engine agrees with the reference evaluator', () => {
  test('random policy sets, principals, requests and contexts (20 000 decisions)', () => {
    const r = rng(0xb01a4c);
    let decisions = 0;
    let allowed = 0;
    for (let round = 0; round < 2000; round++) {
      const docs = genDocs(r);
      const principal = genPrincipal(r);
      const ctx = genContext(r);
      // Half the rounds bind the context at compile time, as an MQTT session does.
      const bound = r.chance(0.5);
      const c = compile(principal, docs, {
        ...(bound ? { context: ctx } : {}),
        now: () => ctx.now as number,
      });
      for (let q = 0; q < 10; q++) {
        const { action, resource } = genRequest(r);
        const want = reference(principal, docs, action, resource, bound ? ctx : { now: ctx.now as number });
        const where = () => JSON.stringify({ docs, principal, ctx, bound, action, resource }, null, 1);
        assert.equal(c.allows(action, resource), want.allowed, `allows: ${where()}`);
        const d = bound ? c.decide(action, resource) : c.decide(action, resource, ctx);
        const wantCtx = reference(principal, docs, action, resource, ctx);
        assert.equal(d.allowed, wantCtx.allowed, `decide: ${where()}`);
        assert.deepEqual(d.matched.map(key).sort(), wantCtx.matched.map(key).sort(), `matched: ${where()}`);
        decisions++;
        if (want.allowed) allowed++;
      }
    }
    // The generator must exercise both outcomes, or agreement means little.
    assert.ok(allowed > decisions * 0.1 && allowed < decisions * 0.9, `allowed ${allowed} of ${decisions}`);
  });

  test('topic tries: matches, covers and overlaps agree with enumeration', () => {
    const r = rng(7);
    for (let i = 0; i < 3000; i++) {
      const filters = Array.from({ length: 1 + r.int(5) }, () => genFilter(r, 4));
      const docs: PolicyDocument[] = [
        {
          id: 'allow',
          statements: [
            {
              effect: 'allow',
              actions: ['mqtt:subscribe'],
              resources: filters.map((f) => `bulwark:t:topic/${f}`),
            },
          ],
        },
      ];
      const denyDocs: PolicyDocument[] = [
        {
          id: 'deny',
          statements: [
            { effect: 'allow', actions: ['mqtt:subscribe'], resources: ['bulwark:t:topic/#'] },
            {
              effect: 'deny',
              actions: ['mqtt:subscribe'],
              resources: filters.map((f) => `bulwark:t:topic/${f}`),
            },
          ],
        },
      ];
      const p: Principal = { type: 'device', id: 'd', tenant: 't' };
      const a = compile(p, docs);
      const d = compile(p, denyDocs);
      const req = genFilter(r, 4);
      const res = `bulwark:t:topic/${req}`;
      const covered = filters.some((f) => refCovers(f, req));
      const overlapped = filters.some((f) => refOverlaps(f, req));
      assert.equal(a.allows('mqtt:subscribe', res), covered, `covers ${filters} ${req}`);
      assert.equal(
        d.allows('mqtt:subscribe', res),
        !overlapped && refCovers('#', req),
        `overlaps ${filters} ${req}`,
      );
    }
  });
});

describe('explain matches decisions', () => {
  test('random attachments at tenant, fleets, groups and devices', async () => {
    const r = rng(42);
    for (let round = 0; round < 40; round++) {
      const fleets = ['a', 'a/b', 'a/b/c', 'z'];
      const groups = ['g1', 'g2', 'quarantine'];
      const devices = Array.from({ length: 6 }, (_, i) => ({
        id: `d${i}`,
        fleet: r.pick(['', ...fleets]),
        groups: groups.filter(() => r.chance(0.3)),
        attributes: { site: r.pick(['a', 'b']) },
      }));
      const at = Date.UTC(2026, 0, 5 + r.int(7), r.int(24), r.int(60));
      const svc = createPolicyService({
        clock: fixedClock(at),
        directory: {
          device: async (_t, id) => devices.find((d) => d.id === id),
          devicesIn: async () => [],
          targetExists: async () => true,
          account: async () => undefined,
        },
      });
      await svc.load();
      const actor = { tenant: 't1', id: 'admin' };
      for (const doc of genDocs(r)) {
        const statements = doc.statements.map((s) => ({
          ...s,
          ...(s.resources
            ? { resources: s.resources.map((x) => x.replace(/^bulwark:(t2|t\*):/, 'bulwark:t1:')) }
            : {}),
          ...(s.notResources
            ? { notResources: s.notResources.map((x) => x.replace(/^bulwark:(t2|t\*):/, 'bulwark:t1:')) }
            : {}),
          ...(s.conditions?.mfa !== undefined ? { conditions: { deviceAttr: { site: ['a'] } } } : {}),
        }));
        const fixed = statements.map((s) => ({
          ...s,
          ...(s.resources ? { resources: s.resources.map((x) => (x === '*' ? 'bulwark:t1:*' : x)) } : {}),
          ...(s.notResources
            ? { notResources: s.notResources.map((x) => (x === '*' ? 'bulwark:t1:*' : x)) }
            : {}),
        }));
        await svc.create(actor, { id: doc.id, statements: fixed });
        const target = r.pick([
          { type: 'tenant' as const, id: 't1' },
          { type: 'fleet' as const, id: r.pick(fleets) },
          { type: 'group' as const, id: r.pick(groups) },
          { type: 'device' as const, id: r.pick(devices).id },
        ]);
        await svc.attach(actor, doc.id, target);
      }
      for (let q = 0; q < 30; q++) {
        const dev = r.pick(devices);
        const req = genRequest(r);
        const action = req.action;
        const resource = req.resource.replace(/^bulwark:t2:/, 'bulwark:t1:');
        const e = await svc.explain('t1', { principal: { type: 'device', id: dev.id }, action, resource });
        const principal: Principal = { type: 'device', tenant: 't1', ...dev };
        const d = svc.authorize(principal, action, resource);
        assert.equal(e.allowed, d.allowed);
        assert.deepEqual(e.matched.map(key).sort(), d.matched.map(key).sort());
        assert.equal(e.outcome, d.allowed ? 'allow' : d.matched.length > 0 ? 'deny' : 'implicit-deny');
        // Every attachment point explain names really applies to this device.
        for (const m of e.matched)
          for (const at of m.attachedAt) {
            if (at.type === 'fleet')
              assert.ok(dev.fleet === at.id || dev.fleet.startsWith(`${at.id}/`), JSON.stringify(at));
            if (at.type === 'group') assert.ok(dev.groups.includes(at.id), JSON.stringify(at));
            if (at.type === 'device') assert.equal(at.id, dev.id);
          }
        // And the reference evaluator, over the documents explain says it evaluated, agrees too.
        const docs = svc.documentsFor(principal).map((x) => x.document);
        assert.equal(reference(principal, docs, action, resource, { now: at }).allowed, e.allowed);
      }
    }
  });
});
