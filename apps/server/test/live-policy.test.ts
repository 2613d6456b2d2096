// Live sessions and policy changes, without a broker: a change marks the sessions it concerns so their
// next decision uses the new policy, a sweep in slices recompiles the rest, removes subscriptions the
// policy no longer allows and drops sessions it no longer allows at all.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createPolicyService, resourceName, type Principal } from '../src/modules/policy/index.ts';
import { createLivePolicies, type LiveSession } from '../src/transport/mqtt/live-policy.ts';

const TENANT = 't1';
const actor = { tenant: TENANT, id: 'admin' };
const topic = (t: string) => resourceName(TENANT, 'topic', t);

interface Sim extends LiveSession {
  subs: Set<string>;
}

function setup(
  options: { placement?: (id: string) => Promise<Principal | undefined>; sliceMs?: number } = {},
) {
  const policy = createPolicyService({
    directory: {
      device: async () => undefined,
      devicesIn: async () => [],
      targetExists: async () => true,
      account: async () => undefined,
    },
  });
  const removed: { id: string; filters: readonly string[]; reason: string }[] = [];
  const revoked: string[] = [];
  const failed: string[] = [];
  const live = createLivePolicies<Sim>({
    policy,
    placement: async (_t, id) =>
      options.placement ? options.placement(id) : { type: 'device', id, tenant: TENANT, fleet: '' },
    subscriptions: (s) => [...s.subs],
    unsubscribe(s, filters, reason) {
      for (const f of filters) s.subs.delete(f);
      removed.push({ id: s.deviceId, filters, reason });
    },
    revoke: (s) => revoked.push(s.deviceId),
    failed: (s) => failed.push(s.deviceId),
    ...(options.sliceMs !== undefined ? { sliceMs: options.sliceMs } : {}),
  });
  const session = (id: string, fleet = 'plant-a', subs: string[] = []): Sim => {
    const subject: Principal = { type: 'device', id, tenant: TENANT, fleet };
    const s: Sim = {
      tenant: TENANT,
      deviceId: id,
      context: {},
      subject,
      policy: policy.compileFor(subject, { context: {} }),
      stale: false,
      placementGeneration: 0,
      subs: new Set(subs),
    };
    live.add(s);
    return s;
  };
  policy.onChange((c) => live.apply(c));
  return { policy, live, session, removed, revoked, failed };
}

describe('live policies', () => {
  test("a change decides every concerned session's next message before the sweep reaches it", async () => {
    const { policy, live, session } = setup({ sliceMs: 0 });
    const sessions = Array.from({ length: 2000 }, (_, i) => session(`d${i}`));
    const last = sessions[1999] as Sim;
    const own = topic('devices/d1999/telemetry');
    assert.equal(live.current(last).allows('mqtt:publish', own), true);
    await policy.create(actor, {
      id: 'freeze',
      statements: [{ effect: 'deny', actions: ['mqtt:publish'], resources: ['topic/devices/#'] }],
    });
    await policy.attach(actor, 'freeze', { type: 'tenant', id: TENANT });
    // The sweep works one session per slice here, so most are still queued...
    assert.ok(live.pending > 1000, `${live.pending} pending`);
    assert.equal(last.stale, true);
    // ...yet the next decision of the last one already uses the new policy.
    assert.equal(live.current(last).allows('mqtt:publish', own), false);
    assert.equal(last.stale, false);
    await live.settled();
    assert.equal(live.pending, 0);
    assert.ok(sessions.every((s) => !s.stale));
    assert.ok(sessions.every((s) => !s.policy.allows('mqtt:publish', topic(`devices/${s.deviceId}/x`))));
  });

  test('the sweep yields to the event loop between slices', async () => {
    const { policy, live, session } = setup({ sliceMs: 0 });
    for (let i = 0; i < 500; i++) session(`d${i}`);
    let ranBetween = false;
    await policy.create(actor, {
      id: 'p',
      statements: [{ effect: 'allow', actions: ['mqtt:publish'], resources: ['topic/x'] }],
    });
    await policy.attach(actor, 'p', { type: 'tenant', id: TENANT });
    setImmediate(() => {
      if (live.pending > 0) ranBetween = true;
    });
    await live.settled();
    assert.equal(ranBetween, true);
  });

  test('subscriptions no longer allowed are removed, others stay; only concerned sessions are touched', async () => {
    const { policy, live, session, removed } = setup();
    const a = session('a', 'plant-a', ['devices/a/commands', 'devices/a/config']);
    const b = session('b', 'plant-b', ['devices/b/commands']);
    await policy.create(actor, {
      id: 'no-commands',
      statements: [
        { effect: 'deny', actions: ['mqtt:subscribe'], resources: ['topic/devices/${device.id}/commands'] },
      ],
    });
    await policy.attach(actor, 'no-commands', { type: 'fleet', id: 'plant-a' });
    await live.settled();
    assert.deepEqual([...a.subs], ['devices/a/config']);
    assert.deepEqual([...b.subs], ['devices/b/commands'], 'another fleet: untouched');
    assert.equal(b.stale, false);
    assert.deepEqual(removed, [{ id: 'a', filters: ['devices/a/commands'], reason: 'policy.attach' }]);
  });

  test('a session the policy no longer allows to connect is revoked', async () => {
    const { policy, live, session, revoked } = setup();
    session('a');
    session('b', 'plant-b');
    await policy.create(actor, {
      id: 'lockout',
      statements: [{ effect: 'deny', actions: ['mqtt:connect'], resources: ['*'] }],
    });
    await policy.attach(actor, 'lockout', { type: 'fleet', id: 'plant-b' });
    await live.settled();
    assert.deepEqual(revoked, ['b']);
    assert.equal(live.size, 1);
  });

  test('a placement change recompiles with the new placement; a slower, older lookup never wins', async () => {
    const lookups: ((p: Principal | undefined) => void)[] = [];
    const { policy, live, session } = setup({
      placement: () => new Promise((resolve) => lookups.push(resolve)),
    });
    await policy.create(actor, {
      id: 'line',
      statements: [
        { effect: 'allow', actions: ['mqtt:publish'], resources: ['topic/lines/${device.fleet}'] },
      ],
    });
    await policy.attach(actor, 'line', { type: 'fleet', id: 'plant-a' });
    const s = session('a', 'plant-b');
    const change = {
      tenant: TENANT,
      scope: { kind: 'devices', ids: ['a'] },
      placementChanged: true,
    } as const;
    await policy.notify({ ...change, reason: 'device.move' });
    await policy.notify({ ...change, reason: 'device.move' });
    assert.equal(lookups.length, 2);
    const placed = (fleet: string): Principal => ({ type: 'device', id: 'a', tenant: TENANT, fleet });
    lookups[1]?.(placed('plant-a/line-1'));
    lookups[0]?.(placed('plant-b'));
    await live.settled();
    assert.equal(s.subject.type === 'device' && s.subject.fleet, 'plant-a/line-1');
    assert.equal(live.current(s).allows('mqtt:publish', topic('lines/plant-a/line-1')), true);
  });

  test('fails closed: a session whose refresh throws is handed to `failed` and leaves the set', async () => {
    const { policy, live, session, failed } = setup({
      placement: () => Promise.reject(new Error('database down')),
    });
    session('a');
    await policy.notify({
      tenant: TENANT,
      scope: { kind: 'devices', ids: ['a'] },
      reason: 'device.move',
      placementChanged: true,
    });
    await live.settled();
    assert.deepEqual(failed, ['a']);
    assert.equal(live.size, 0);
  });
});
