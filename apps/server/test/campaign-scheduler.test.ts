// The campaign scheduler's pure decisions: plan validation (malformed inputs), wave sizes, maintenance
// windows, concurrency and rate limits, thresholds, approvals; eligibility from capability profiles.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  DEFAULT_PLAN,
  eligibility,
  inWindow,
  nextStep,
  validateCampaign,
  validatePlan,
  waveSizes,
  type SchedulerInput,
} from '../src/modules/ota/index.ts';
import { AppError } from '../src/kernel/index.ts';

const codeOf = (fn: () => unknown) => {
  try {
    fn();
  } catch (err) {
    return err instanceof AppError ? err.code : String(err);
  }
  return 'no error';
};

describe('plan validation', () => {
  test('defaults, and every field checked', () => {
    assert.deepEqual(validatePlan(undefined), DEFAULT_PLAN);
    const p = validatePlan({ waves: [{ count: 5 }, { percent: 20 }, { percent: 100 }], maxConcurrent: 10 });
    assert.equal(p.maxConcurrent, 10);
    assert.equal(p.waves.length, 3);
  });
  const malformed: [string, unknown][] = [
    ['not an object', 'fast'],
    ['unknown field', { speed: 1 }],
    ['no waves', { waves: [] }],
    ['wave with both', { waves: [{ count: 1, percent: 5 }] }],
    ['zero count', { waves: [{ count: 0 }] }],
    ['percent over 100', { waves: [{ percent: 120 }] }],
    ['shrinking percent', { waves: [{ percent: 50 }, { percent: 10 }] }],
    ['fractional concurrency', { maxConcurrent: 1.5 }],
    ['zero rate', { ratePerMinute: 0 }],
    ['bad window time', { windows: [{ from: '25:00', to: '02:00' }] }],
    ['empty window', { windows: [{ from: '02:00', to: '02:00' }] }],
    ['bad window day', { windows: [{ from: '01:00', to: '02:00', days: ['funday'] }] }],
    ['unknown approval', { approval: 'sometimes' }],
    ['threshold over 100', { failureThresholdPercent: 101 }],
    ['unknown on-failure', { onFailure: 'panic' }],
    ['string boolean', { allowDowngrade: 'yes' }],
    ['timeout too short', { deviceTimeoutSeconds: 1 }],
  ];
  for (const [name, plan] of malformed) {
    test(`refused: ${name}`, () =>
      assert.equal(
        codeOf(() => validatePlan(plan)),
        'ERR_CAMPAIGN_INVALID',
      ));
  }
  test('every problem is listed at once', () => {
    try {
      validatePlan({ maxConcurrent: 0, ratePerMinute: -1, approval: 'x' });
      assert.fail('accepted');
    } catch (err) {
      assert.equal((err as AppError).errors?.length, 3);
    }
  });
  const campaigns: [string, unknown, string][] = [
    ['no name', { release: 'r', target: { fleet: 'a' } }, 'ERR_CAMPAIGN_INVALID'],
    ['two targets', { name: 'n', release: 'r', target: { fleet: 'a', group: 'g' } }, 'ERR_CAMPAIGN_INVALID'],
    ['empty device list', { name: 'n', release: 'r', target: { devices: [] } }, 'ERR_CAMPAIGN_INVALID'],
    ['bad query', { name: 'n', release: 'r', target: { query: 'attr.x ==' } }, 'ERR_GROUP_QUERY_INVALID'],
    [
      'unknown field',
      { name: 'n', release: 'r', target: { fleet: 'a' }, when: 'now' },
      'ERR_CAMPAIGN_INVALID',
    ],
  ];
  for (const [name, input, code] of campaigns) {
    test(`campaign refused: ${name}`, () =>
      assert.equal(
        codeOf(() => validateCampaign(input)),
        code,
      ));
  }
});

describe('waves', () => {
  test('canary count then cumulative percentages; the rest forms a last wave', () => {
    assert.deepEqual(
      waveSizes(1000, [{ count: 10 }, { percent: 10 }, { percent: 50 }, { percent: 100 }]),
      [10, 90, 400, 500],
    );
    assert.deepEqual(waveSizes(1000, [{ count: 10 }, { percent: 50 }]), [10, 490, 500]);
    assert.deepEqual(waveSizes(3, [{ count: 10 }, { percent: 50 }]), [3]);
    assert.deepEqual(waveSizes(100_000, [{ percent: 1 }, { percent: 100 }]), [1000, 99_000]);
    assert.deepEqual(waveSizes(7, [{ percent: 1 }, { percent: 100 }]), [1, 6]);
  });
});

describe('maintenance windows (UTC)', () => {
  const at = (iso: string) => Date.parse(iso);
  test('inside, outside, wrapping past midnight, days', () => {
    const w = [{ from: '22:00', to: '04:00', days: ['sat' as const] }];
    assert.equal(inWindow([], at('2026-01-05T12:00:00Z')), true);
    assert.equal(inWindow([{ from: '01:00', to: '03:00' }], at('2026-01-05T02:00:00Z')), true);
    assert.equal(inWindow([{ from: '01:00', to: '03:00' }], at('2026-01-05T03:00:00Z')), false);
    assert.equal(inWindow(w, at('2026-01-03T23:00:00Z')), true); // Saturday night
    assert.equal(inWindow(w, at('2026-01-04T03:00:00Z')), true); // early Sunday: Saturday's window
    assert.equal(inWindow(w, at('2026-01-04T23:00:00Z')), false); // Sunday night
  });
});

describe('next step', () => {
  const base: SchedulerInput = {
    state: 'running',
    plan: { ...DEFAULT_PLAN, maxConcurrent: 10, ratePerMinute: 30, failureThresholdPercent: 20 },
    wave: 0,
    waveCount: 3,
    approvedWave: 0,
    failuresAcknowledged: 0,
    counts: { total: 10, pending: 10, active: 0, succeeded: 0, failed: 0, cancelled: 0 },
    inProgress: 0,
    notifiedLastMinute: 0,
    now: Date.parse('2026-01-05T12:00:00Z'),
  };
  test('notifies within concurrency and rate', () => {
    assert.deepEqual(nextStep(base), { kind: 'notify', count: 10 });
    assert.deepEqual(nextStep({ ...base, inProgress: 7 }), { kind: 'notify', count: 3 });
    assert.deepEqual(nextStep({ ...base, notifiedLastMinute: 25 }), { kind: 'notify', count: 5 });
    assert.deepEqual(nextStep({ ...base, inProgress: 10 }), {
      kind: 'idle',
      reason: 'at maximum concurrency',
    });
    assert.deepEqual(nextStep({ ...base, notifiedLastMinute: 30 }), { kind: 'idle', reason: 'rate limited' });
  });
  test('waits outside maintenance windows', () => {
    const plan = { ...base.plan, windows: [{ from: '01:00', to: '03:00' }] };
    assert.deepEqual(nextStep({ ...base, plan }), { kind: 'idle', reason: 'outside maintenance windows' });
  });
  test('threshold: more than the tolerated share failed', () => {
    const counts = { ...base.counts, pending: 5, active: 2, failed: 2, succeeded: 1 };
    assert.equal(nextStep({ ...base, counts }).kind, 'notify'); // 2 of 10 = 20%: tolerated
    const worse = { ...counts, failed: 3, active: 1 };
    assert.deepEqual(nextStep({ ...base, counts: worse }), {
      kind: 'threshold',
      action: 'abort',
      failed: 3,
      size: 10,
    });
    assert.equal(nextStep({ ...base, counts: worse, failuresAcknowledged: 3 }).kind, 'notify');
    const zero = { ...base.plan, failureThresholdPercent: 0, onFailure: 'pause' as const };
    assert.deepEqual(nextStep({ ...base, plan: zero, counts: { ...counts, failed: 1 } }), {
      kind: 'threshold',
      action: 'pause',
      failed: 1,
      size: 10,
    });
  });
  test('advance, approval, completion', () => {
    const done = { ...base.counts, pending: 0, succeeded: 10 };
    assert.deepEqual(nextStep({ ...base, counts: done }), { kind: 'advance', to: 1, awaitApproval: false });
    const approval = { ...base.plan, approval: 'each-wave' as const };
    assert.deepEqual(nextStep({ ...base, plan: approval, counts: done }), {
      kind: 'advance',
      to: 1,
      awaitApproval: true,
    });
    assert.deepEqual(nextStep({ ...base, counts: done, wave: 2 }), { kind: 'complete' });
    assert.deepEqual(nextStep({ ...base, counts: { ...done, pending: 0, active: 3, succeeded: 7 } }), {
      kind: 'idle',
      reason: 'wave in progress',
    });
    assert.deepEqual(nextStep({ ...base, state: 'paused' }), { kind: 'idle', reason: 'paused' });
  });
});

describe('eligibility from the capability profile', () => {
  const release = {
    kind: 'firmware' as const,
    name: 'sensor-fw',
    version: '1.2.0',
    hardware: ['sensor-v2', 'cam@b'],
  };
  const ok = {
    hardware: { model: 'sensor-v2' },
    firmware: { version: '1.1.0' },
    updateMethod: 'ab-partition',
  };
  test('eligible, downgrade and the reasons for exclusion', () => {
    assert.deepEqual(eligibility(ok, release), { ok: true, from: '1.1.0', downgrade: false });
    assert.deepEqual(eligibility({ ...ok, firmware: { version: '1.10.0' } }, release), {
      ok: true,
      from: '1.10.0',
      downgrade: true,
    });
    const reasons: [unknown, string][] = [
      [undefined, 'no capability report'],
      [{ ...ok, updateMethod: undefined }, 'update method unknown'],
      [{ ...ok, updateMethod: 'none' }, 'not updatable (update method none)'],
      [{ ...ok, hardware: {} }, 'hardware model unknown'],
      [{ ...ok, hardware: { model: 'legacy-v1' } }, 'incompatible hardware legacy-v1'],
      [{ ...ok, hardware: { model: 'cam', revision: 'a' } }, 'incompatible hardware cam@a'],
      [{ ...ok, firmware: { version: '1.2.0' } }, 'already at 1.2.0'],
    ];
    for (const [caps, reason] of reasons) {
      assert.deepEqual(eligibility(caps as never, release), { ok: false, reason });
    }
    assert.equal(eligibility({ ...ok, hardware: { model: 'cam', revision: 'b' } }, release).ok, true);
  });
});
