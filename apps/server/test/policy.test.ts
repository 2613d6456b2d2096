import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  compile,
  createPolicyService,
  filterCovers,
  resourceName,
  topicMatches,
  type PolicyDocument,
  type Principal,
} from '../src/modules/policy/index.ts';

const device = (id: string, tenant = 't1'): Principal => ({ type: 'device', id, tenant });
const topic = (tenant: string, t: string) => resourceName(tenant, 'topic', t);

describe('topic matching', () => {
  const cases: [string, string, boolean][] = [
    ['a/b', 'a/b', true],
    ['a/+', 'a/b', true],
    ['a/+', 'a/b/c', false],
    ['a/#', 'a', true], // [MQTT-4.7.1-2] # includes the parent level
    ['a/#', 'a/b/c', true],
    ['+/+', 'a/b', true],
    ['+', '/a', false],
    ['#', 'x/y', true],
    ['a/b', 'a/b/', false],
  ];
  for (const [filter, t, want] of cases) {
    test(`${filter} ~ ${t} = ${want}`, () => assert.equal(topicMatches(filter, t), want));
  }
  test('filter coverage', () => {
    assert.equal(filterCovers('devices/d1/#', 'devices/d1/+/x'), true);
    assert.equal(filterCovers('devices/d1/#', 'devices/+/x'), false);
    assert.equal(filterCovers('devices/+/x', 'devices/d1/x'), true);
    assert.equal(filterCovers('devices/d1/x', 'devices/d1/#'), false);
    assert.equal(filterCovers('devices/d1/#', '#'), false);
  });
});

describe('default device policy', () => {
  const policy = createPolicyService();
  const p = policy.compileFor(device('sensor-1'));
  test('a device uses its own namespace', () => {
    assert.equal(p.allows('mqtt:publish', topic('t1', 'devices/sensor-1/telemetry')), true);
    assert.equal(p.allows('mqtt:subscribe', topic('t1', 'devices/sensor-1/commands')), true);
    assert.equal(p.allows('mqtt:subscribe', topic('t1', 'devices/sensor-1/#')), true);
    assert.equal(p.allows('mqtt:connect', resourceName('t1', 'client', 'sensor-1')), true);
  });
  test('and nothing else', () => {
    assert.equal(p.allows('mqtt:publish', topic('t1', 'devices/sensor-2/telemetry')), false);
    assert.equal(
      p.allows('mqtt:publish', topic('t2', 'devices/sensor-1/telemetry')),
      false,
      'another tenant',
    );
    assert.equal(
      p.allows('mqtt:subscribe', topic('t1', 'devices/+/telemetry')),
      false,
      'wildcard over other devices',
    );
    assert.equal(p.allows('mqtt:subscribe', topic('t1', '#')), false);
    assert.equal(
      p.allows('mqtt:publish', topic('t1', 'devices/sensor-10/telemetry')),
      false,
      'prefix of another id',
    );
    assert.equal(p.allows('mqtt:publish', topic('t1', 'devices')), false);
    assert.equal(p.allows('mqtt:connect', resourceName('t1', 'client', 'sensor-2')), false);
    assert.equal(p.allows('devices:read', resourceName('t1', 'device', 'sensor-1')), false);
  });
});

describe('engine', () => {
  const docs: PolicyDocument[] = [
    {
      id: 'p1',
      statements: [
        { sid: 'allow-all-topics', effect: 'allow', actions: ['mqtt:*'], resources: ['bulwark:t1:topic/#'] },
        {
          sid: 'deny-admin',
          effect: 'deny',
          actions: ['mqtt:publish'],
          resources: ['bulwark:t1:topic/admin/#'],
        },
        {
          sid: 'attr',
          effect: 'allow',
          actions: ['mqtt:publish'],
          resources: ['bulwark:t1:topic/sites/${device.attr.site}/#'],
        },
      ],
    },
  ];
  test('deny wins over allow, and explain names the statement', () => {
    const c = compile(device('d'), docs);
    const d = c.decide('mqtt:publish', topic('t1', 'admin/x'));
    assert.equal(d.allowed, false);
    assert.deepEqual(d.matched, [{ policy: 'p1', sid: 'deny-admin', statement: 1, effect: 'deny' }]);
    assert.equal(c.decide('mqtt:subscribe', topic('t1', 'admin/x')).allowed, true);
  });
  test('no matching allow means deny', () => {
    const c = compile(device('d'), docs);
    assert.deepEqual(c.decide('devices:read', 'bulwark:t1:device/d'), { allowed: false, matched: [] });
  });
  test('an undefined variable makes its resource match nothing', () => {
    const c = compile(device('d'), [
      docs[0]?.statements[2] ? { id: 'x', statements: [docs[0].statements[2]] } : docs[0]!,
    ]);
    assert.equal(c.allows('mqtt:publish', topic('t1', 'sites/anything/x')), false);
    const withAttr = compile({ type: 'device', id: 'd', tenant: 't1', attributes: { site: 'plant-a' } }, [
      { id: 'x', statements: [docs[0]!.statements[2]!] },
    ]);
    assert.equal(withAttr.allows('mqtt:publish', topic('t1', 'sites/plant-a/x')), true);
    assert.equal(withAttr.allows('mqtt:publish', topic('t1', 'sites/plant-b/x')), false);
  });
  test('a variable value cannot inject wildcards or levels', () => {
    // Attribute values are substituted literally; one holding a wildcard or a `/` would widen the
    // statement, so such a value makes the resource match nothing at all.
    for (const site of ['#', '+', 'a/#', 'plant-a/b', '*', '']) {
      const sneaky = compile({ type: 'device', id: 'd', tenant: 't1', attributes: { site } }, [
        { id: 'x', statements: [docs[0]!.statements[2]!] },
      ]);
      assert.equal(sneaky.allows('mqtt:publish', topic('t1', 'sites/plant-b/x')), false, site);
      assert.equal(sneaky.allows('mqtt:publish', topic('t1', `sites/${site}/x`)), false, site);
    }
  });
});

describe('roles are confined to their tenant', () => {
  const policy = createPolicyService();
  const owner: Principal = { type: 'user', id: 'u1', tenant: 't1', role: 'owner' };
  const viewer: Principal = { type: 'user', id: 'u2', tenant: 't1', role: 'viewer' };
  test('owner: everything in its tenant, nothing in another', () => {
    assert.equal(policy.authorize(owner, 'devices:write', 'bulwark:t1:device/x').allowed, true);
    assert.equal(policy.authorize(owner, 'devices:read', 'bulwark:t2:device/x').allowed, false);
  });
  test('viewer: read only', () => {
    assert.equal(policy.authorize(viewer, 'devices:read', 'bulwark:t1:device/x').allowed, true);
    assert.equal(policy.authorize(viewer, 'devices:write', 'bulwark:t1:device/x').allowed, false);
    assert.equal(policy.authorize(viewer, 'certs:revoke', 'bulwark:t1:device/x').allowed, false);
  });
  test('unknown role: nothing', () => {
    assert.equal(
      policy.authorize({ ...viewer, role: 'nope' }, 'devices:read', 'bulwark:t1:device/x').allowed,
      false,
    );
  });
});
