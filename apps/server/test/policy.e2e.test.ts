// End to end over real mutual TLS with a real MQTT client (MQTT.js, v5): policies attached through the
// API reach live sessions within a second, subscriptions the new policy forbids stop delivering, the
// quarantine group limits a device to status and update topics, and explain / diff / lint answer.
import 'reflect-metadata';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { MqttClient } from 'mqtt';
import {
  connectDevice,
  enrollDevice,
  startPlatform,
  waitFor,
  type DeviceCredentials,
  type Platform,
} from '../../../test/support/platform.ts';

const publishRc = (c: MqttClient, topic: string, payload = '{"x":1}') =>
  new Promise<number>((resolve, reject) =>
    c.publish(topic, payload, { qos: 1 }, (err, packet) => {
      if (err && !(err as { code?: number }).code) reject(err);
      else
        resolve(
          (err as { code?: number } | undefined)?.code ??
            (packet as { reasonCode?: number } | undefined)?.reasonCode ??
            0,
        );
    }),
  );

const subscribeRc = (c: MqttClient, filter: string) =>
  c.subscribeAsync(filter, { qos: 1 }).then(
    (granted) => granted[0]?.qos ?? -1,
    (err: { packet?: { granted?: number[] } }) => err.packet?.granted?.[0] ?? -1,
  );

/** Messages the client receives, by topic. */
function inbox(c: MqttClient): string[] {
  const got: string[] = [];
  c.on('message', (topic) => got.push(topic));
  return got;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Measures how long until `fn` holds, failing after one second (the propagation bound). */
async function withinOneSecond(fn: () => Promise<boolean>): Promise<number> {
  const start = Date.now();
  await waitFor(async () => ((await fn()) ? true : undefined), 1000, 10);
  return Date.now() - start;
}

describe('policies end to end', () => {
  let p: Platform;
  let robot: DeviceCredentials;
  let client: MqttClient;
  const api = <T = Record<string, unknown>>(method: string, path: string, body?: unknown) =>
    p.api<T>(method, `/api/v1${path}`, body);

  before(async () => {
    p = await startPlatform();
    for (const path of ['plant-a', 'plant-a/line-3', 'plant-b'])
      assert.equal((await api('POST', '/fleets', { path })).status, 201);
    robot = await enrollDevice(p, 'robot-1');
    client = await connectDevice(p, robot, { clientId: 'robot-1' });
  });
  after(async () => {
    await client?.endAsync();
    await p.close();
  });

  test('a policy attached to a fleet reaches a live session when the device moves in; an edit tightens it', async () => {
    const created = await api('POST', '/policies', {
      id: 'line-broadcast',
      statements: [
        {
          sid: 'broadcast',
          effect: 'allow',
          actions: ['mqtt:publish'],
          resources: ['topic/fleets/${device.fleet}/broadcast'],
        },
      ],
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const attached = await api('POST', '/policies/line-broadcast/attach', {
      targetType: 'fleet',
      targetId: 'plant-a',
    });
    assert.equal(attached.status, 200, JSON.stringify(attached.body));

    const topic = 'fleets/plant-a/line-3/broadcast';
    assert.equal(await publishRc(client, topic), 0x87, 'not in the fleet yet');
    assert.equal((await api('POST', '/devices/robot-1/move', { fleet: 'plant-a/line-3' })).status, 200);
    // Inherited from plant-a, with ${device.fleet} = plant-a/line-3, on the session that is already open.
    const moved = await withinOneSecond(async () => (await publishRc(client, topic)) === 0);
    assert.ok(moved < 1000, `${moved} ms`);

    const edited = await api('PUT', '/policies/line-broadcast', {
      statements: [
        {
          sid: 'broadcast',
          effect: 'deny',
          actions: ['mqtt:publish'],
          resources: ['topic/fleets/${device.fleet}/broadcast'],
        },
      ],
      expectedVersion: 1,
    });
    assert.equal(edited.status, 200, JSON.stringify(edited.body));
    // The policy change is applied before the API answers: the very next message is refused.
    assert.equal(await publishRc(client, topic), 0x87);
    const stale = await api<{ code: string }>('PUT', '/policies/line-broadcast', {
      statements: [],
      expectedVersion: 1,
    });
    assert.equal(stale.status, 400, 'an empty statement list is invalid before any version check');
    const conflict = await api<{ code: string }>('PUT', '/policies/line-broadcast', {
      statements: [{ effect: 'allow', actions: ['mqtt:publish'], resources: ['topic/x'] }],
      expectedVersion: 1,
    });
    assert.equal(conflict.body.code, 'ERR_POLICY_VERSION_CONFLICT');

    const versions = await api<{ items: { version: number }[] }>('GET', '/policies/line-broadcast/versions');
    assert.deepEqual(
      versions.body.items.map((v) => v.version),
      [2, 1],
    );
    const audit = await api<{ items: { action: string; details: { from?: number; version?: number } }[] }>(
      'GET',
      '/audit?action=policy.update',
    );
    assert.deepEqual(audit.body.items[0]?.details.from, 1);
    assert.equal(
      (await api('POST', '/policies/line-broadcast/detach', { targetType: 'fleet', targetId: 'plant-a' }))
        .status,
      200,
    );
    assert.equal((await api('DELETE', '/policies/line-broadcast')).status, 204);
  });

  test('a subscription the new policy forbids is removed from the session; others keep working', async () => {
    const got = inbox(client);
    assert.equal(await subscribeRc(client, 'devices/robot-1/commands'), 1);
    assert.equal(await subscribeRc(client, 'devices/robot-1/config'), 1);
    const send = (t: string) => p.app.mqtt.broker.publish({ topic: t, payload: '{}', qos: 1 });
    await send('devices/robot-1/commands');
    await waitFor(() => got.includes('devices/robot-1/commands') || undefined);

    await api('POST', '/policies', {
      id: 'no-commands',
      statements: [
        { effect: 'deny', actions: ['mqtt:subscribe'], resources: ['topic/devices/${device.id}/commands'] },
      ],
    });
    assert.equal(
      (await api('POST', '/policies/no-commands/attach', { targetType: 'device', targetId: 'robot-1' }))
        .status,
      200,
    );
    got.length = 0;
    await send('devices/robot-1/commands');
    await send('devices/robot-1/config');
    await waitFor(() => got.includes('devices/robot-1/config') || undefined);
    await sleep(200);
    assert.deepEqual(
      got,
      ['devices/robot-1/config'],
      'mqtt:receive is still allowed: only the subscription went',
    );
    const held = p.app.mqtt.broker.subscriptionsOf('robot-1').map((s) => s.filter);
    assert.ok(!held.includes('devices/robot-1/commands'), 'the broker no longer holds the subscription');
    assert.ok(held.includes('devices/robot-1/config'));
    assert.equal(await subscribeRc(client, 'devices/robot-1/commands'), 0x87, 'and it cannot be made again');
    const audit = await api<{ items: { reason?: string; target?: { id: string } }[] }>(
      'GET',
      '/audit?action=mqtt.subscribe',
    );
    assert.ok(
      audit.body.items.some(
        (e) => /subscription removed/.test(e.reason ?? '') && e.target?.id === 'devices/robot-1/commands',
      ),
    );

    assert.equal(
      (await api('POST', '/policies/no-commands/detach', { targetType: 'device', targetId: 'robot-1' }))
        .status,
      200,
    );
    assert.equal(await subscribeRc(client, 'devices/robot-1/commands'), 1);
    got.length = 0;
    await send('devices/robot-1/commands');
    await waitFor(() => got.includes('devices/robot-1/commands') || undefined);
  });

  test('attributes are policy variables on the live session', async () => {
    await api('POST', '/policies', {
      id: 'site-topics',
      statements: [
        { effect: 'allow', actions: ['mqtt:publish'], resources: ['topic/sites/${device.attr.site}/+'] },
      ],
    });
    await api('POST', '/policies/site-topics/attach', { targetType: 'tenant' });
    assert.equal(await publishRc(client, 'sites/lyon/temp'), 0x87);
    assert.equal((await api('PATCH', '/devices/robot-1', { attributes: { site: 'lyon' } })).status, 200);
    await withinOneSecond(async () => (await publishRc(client, 'sites/lyon/temp')) === 0);
    assert.equal(await publishRc(client, 'sites/paris/temp'), 0x87);
    await api('PATCH', '/devices/robot-1', { attributes: { site: '#' } });
    await withinOneSecond(async () => (await publishRc(client, 'sites/lyon/temp')) === 0x87);
    assert.equal(await publishRc(client, 'sites/x/temp'), 0x87, 'a wildcard value widens nothing');
    await api('POST', '/policies/site-topics/detach', { targetType: 'tenant' });
  });

  test('quarantine limits a live device to its status and update topics, and explain says why', async () => {
    const got = inbox(client);
    assert.equal(await subscribeRc(client, 'devices/robot-1/commands'), 1);
    assert.equal(await publishRc(client, 'devices/robot-1/telemetry'), 0);

    const q = await api('POST', '/groups/quarantine/members', { deviceIds: ['robot-1'] });
    assert.equal(q.status, 200, JSON.stringify(q.body));
    await withinOneSecond(async () => (await publishRc(client, 'devices/robot-1/telemetry')) === 0x87);
    assert.equal(await publishRc(client, 'devices/robot-1/status', '{"state":"quarantined"}'), 0);
    assert.equal(await subscribeRc(client, 'devices/robot-1/update/#'), 1);
    assert.equal(await subscribeRc(client, 'devices/robot-1/ota/notify'), 1, 'OTA notices still reach it');
    assert.equal(await subscribeRc(client, 'devices/robot-1/#'), 0x87);
    // It may still report tampering (and the report becomes a posture finding), but not listen there.
    const tamper = JSON.stringify({ kind: 'enclosure-opened', at: new Date().toISOString() });
    assert.equal(await publishRc(client, 'devices/robot-1/events/tamper', tamper), 0);
    assert.equal(await subscribeRc(client, 'devices/robot-1/events/tamper'), 0x87);
    const findings = await api<{ items: { kind: string; device?: string }[] }>('GET', '/posture/findings');
    assert.equal(findings.status, 200, JSON.stringify(findings.body));
    assert.ok(
      findings.body.items.some((f) => /tamper/.test(f.kind)),
      JSON.stringify(findings.body),
    );
    got.length = 0;
    await p.app.mqtt.broker.publish({ topic: 'devices/robot-1/commands', payload: '{}', qos: 1 });
    await p.app.mqtt.broker.publish({ topic: 'devices/robot-1/update/firmware', payload: '{}', qos: 1 });
    await waitFor(() => got.includes('devices/robot-1/update/firmware') || undefined);
    await sleep(200);
    assert.deepEqual(got, ['devices/robot-1/update/firmware']);

    // Even an explicit allow attached to the device cannot widen a quarantine.
    await api('POST', '/policies', {
      id: 'wide',
      statements: [{ effect: 'allow', actions: ['mqtt:*'], resources: ['topic/#'] }],
    });
    await api('POST', '/policies/wide/attach', { targetType: 'device', targetId: 'robot-1' });
    assert.equal(await publishRc(client, 'devices/robot-1/telemetry'), 0x87);

    const e = await api<{
      allowed: boolean;
      outcome: string;
      matched: { policy: string; sid: string; effect: string; attachedAt: { type: string; id: string }[] }[];
      evaluated: { policy: string }[];
    }>('POST', '/policies/explain', {
      principal: { type: 'device', id: 'robot-1' },
      action: 'mqtt:publish',
      resource: 'topic/devices/robot-1/telemetry',
    });
    assert.equal(e.status, 200, JSON.stringify(e.body));
    assert.equal(e.body.allowed, false);
    assert.equal(e.body.outcome, 'deny');
    assert.deepEqual(
      e.body.matched.map((m) => [m.policy, m.sid, m.effect, m.attachedAt]),
      [['builtin:quarantine', 'limit-to-status-and-update', 'deny', [{ type: 'group', id: 'quarantine' }]]],
    );
    assert.deepEqual(
      e.body.evaluated.map((x) => x.policy),
      ['builtin:device-default', 'builtin:quarantine', 'wide'],
    );

    assert.equal(
      (await api('POST', '/groups/quarantine/members/remove', { deviceIds: ['robot-1'] })).status,
      200,
    );
    await withinOneSecond(async () => (await publishRc(client, 'devices/robot-1/telemetry')) === 0);
    const allowed = await api<{
      outcome: string;
      matched: { policy: string; attachedAt: { type: string }[] }[];
    }>('POST', '/policies/explain', {
      principal: { type: 'device', id: 'robot-1' },
      action: 'mqtt:publish',
      resource: 'topic/anything',
    });
    assert.equal(allowed.body.outcome, 'allow');
    assert.deepEqual(
      allowed.body.matched.map((m) => [m.policy, m.attachedAt[0]?.type]),
      [['wide', 'device']],
    );
    await api('POST', '/policies/wide/detach', { targetType: 'device', targetId: 'robot-1' });
  });

  test('explain for people; dry-run diff; lint; refusals', async () => {
    const who = await api<{ id: string }>('GET', '/whoami');
    const e = await api<{
      allowed: boolean;
      matched: { policy: string; attachedAt: { type: string; id: string }[] }[];
    }>('POST', '/policies/explain', {
      principal: { type: 'user', id: who.body.id },
      action: 'certs:revoke',
      resource: 'device/robot-1',
    });
    assert.equal(e.status, 200, JSON.stringify(e.body));
    assert.equal(e.body.allowed, true);
    assert.deepEqual(e.body.matched[0]?.attachedAt, [{ type: 'role', id: 'owner' }]);

    // A program whose role is limited to a fleet subtree: the role's policy allows, the boundary decides.
    const scoped = await api<{ id: string }>('POST', '/service-accounts', {
      name: 'line-bridge',
      role: 'operator',
      fleet: 'plant-b',
    });
    assert.equal(scoped.status, 201, JSON.stringify(scoped.body));
    type Explained = {
      allowed: boolean;
      outcome: string;
      boundaries: { boundary: { kind: string; fleet?: string }; allowed: boolean }[];
    };
    const explainFor = (resource: string) =>
      api<Explained>('POST', '/policies/explain', {
        principal: { type: 'service', id: scoped.body.id },
        action: 'devices:write',
        resource,
      });
    const outside = await explainFor('device/robot-1'); // robot-1 sits in plant-a/line-3
    assert.equal(outside.status, 200, JSON.stringify(outside.body));
    assert.equal(outside.body.allowed, false);
    assert.equal(outside.body.outcome, 'boundary-deny');
    assert.deepEqual(outside.body.boundaries, [
      { boundary: { kind: 'role-scope', fleet: 'plant-b' }, allowed: false },
    ]);
    const inside = await explainFor('fleet/plant-b');
    assert.equal(inside.body.outcome, 'allow', JSON.stringify(inside.body));
    assert.deepEqual(inside.body.boundaries, [
      { boundary: { kind: 'role-scope', fleet: 'plant-b' }, allowed: true },
    ]);
    // The explanation agrees with what the API decides for that program.
    const minted = await api<{ secret: string }>('POST', `/accounts/${scoped.body.id}/tokens`, {
      name: 'probe',
    });
    assert.equal(minted.status, 201, JSON.stringify(minted.body));
    const asIt = await p.api(
      'PATCH',
      '/api/v1/devices/robot-1',
      { attributes: { x: '1' } },
      minted.body.secret,
    );
    assert.equal(asIt.status, 403);

    await enrollDevice(p, 'robot-2');
    await api('POST', '/devices/robot-2/move', { fleet: 'plant-b' });
    await api('POST', '/policies', {
      id: 'plant-b-status',
      statements: [{ effect: 'allow', actions: ['mqtt:publish'], resources: ['topic/plants/b/status'] }],
    });
    const dry = await api<{
      devices: { id: string; gained: { action: string; resource: string }[]; lost: unknown[] }[];
      evaluated: number;
      lint: { rule: string }[];
    }>('POST', '/policies/plant-b-status/diff', { attach: { targetType: 'fleet', targetId: 'plant-b' } });
    assert.equal(dry.status, 200, JSON.stringify(dry.body));
    assert.deepEqual(dry.body.devices, [
      {
        id: 'robot-2',
        gained: [{ action: 'mqtt:publish', resource: 'bulwark:default:topic/plants/b/status' }],
        lost: [],
      },
    ]);
    assert.equal(dry.body.evaluated, 1);
    assert.equal((await api('GET', '/policy-attachments?targetType=fleet&targetId=plant-b')).status, 200);
    await api('POST', '/policies/plant-b-status/attach', { targetType: 'fleet', targetId: 'plant-b' });
    const edit = await api<{
      devices: { id: string; gained: unknown[]; lost: { resource: string }[] }[];
      lint: { rule: string }[];
    }>('POST', '/policies/plant-b-status/diff', {
      document: { statements: [{ effect: 'allow', actions: ['mqtt:publish'], resources: ['topic/#'] }] },
    });
    assert.equal(edit.body.devices[0]?.id, 'robot-2');
    assert.ok(edit.body.devices[0]?.gained.length, 'publishing anywhere is gained');
    assert.ok(edit.body.lint.some((f) => f.rule === 'topic-everything'));
    // A tenant-wide policy reaches people and programs too: the diff says who gains what, and a
    // permission a fleet boundary withholds is not counted as gained.
    await api('POST', '/policies', {
      id: 'no-revoke',
      statements: [{ effect: 'deny', actions: ['certs:revoke'], resources: ['*'] }],
    });
    const wide = await api<{
      devices: unknown[];
      accounts: { type: string; id: string; lost: { action: string; resource: string }[] }[];
    }>('POST', '/policies/no-revoke/diff', { attach: { targetType: 'tenant', targetId: 'default' } });
    assert.equal(wide.status, 200, JSON.stringify(wide.body));
    const owner = wide.body.accounts.find((a) => a.id === who.body.id);
    assert.deepEqual(owner?.lost, [{ action: 'certs:revoke', resource: 'bulwark:default:_' }]);
    assert.equal(owner?.type, 'user');
    assert.ok(
      !wide.body.accounts.some((a) => a.id === scoped.body.id),
      'an operator never held certs:revoke: it loses nothing',
    );
    assert.deepEqual(wide.body.devices, [], 'devices never held certs:revoke either');
    const fleetDelete = await api<{ code: string }>('DELETE', `/fleets/${encodeURIComponent('plant-b')}`);
    assert.equal(fleetDelete.body.code, 'ERR_FLEET_NOT_EMPTY');

    const lint = await api<{ findings: { rule: string; severity: string }[] }>('POST', '/policies/lint', {
      statements: [{ effect: 'allow', actions: ['*'], resources: ['topic/#'] }],
    });
    assert.deepEqual(lint.body.findings.map((f) => f.rule).sort(), ['topic-everything', 'wildcard-action']);

    const bad = await api<{ code: string; errors: { path: string; message: string }[] }>(
      'POST',
      '/policies',
      {
        id: 'bad',
        statements: [{ effect: 'allow', actions: ['mqtt:publsh'], resources: ['topic/a/#/b'] }],
      },
    );
    assert.equal(bad.status, 400);
    assert.equal(bad.body.code, 'ERR_POLICY_INVALID');
    assert.deepEqual(
      bad.body.errors.map((x) => x.path),
      ['statements[0].actions[0]', 'statements[0].resources[0]'],
    );
    const other = await api<{ code: string }>('POST', '/policies', {
      id: 'other-tenant',
      statements: [{ effect: 'allow', actions: ['mqtt:publish'], resources: ['bulwark:acme:topic/#'] }],
    });
    assert.equal(other.body.code, 'ERR_POLICY_BAD_RESOURCE');
    const builtin = await api<{ code: string }>('PUT', '/policies/builtin:quarantine', {
      statements: [{ effect: 'allow', actions: ['mqtt:*'], resources: ['topic/#'] }],
    });
    assert.equal(builtin.body.code, 'ERR_POLICY_BUILTIN');
    const builtinDelete = await api<{ code: string }>('DELETE', '/policies/builtin:quarantine');
    assert.equal(builtinDelete.body.code, 'ERR_POLICY_BUILTIN');
    const listed = await api<{ items: { id: string; builtin: boolean }[] }>('GET', '/policies');
    assert.ok(listed.body.items.some((x) => x.id === 'builtin:quarantine' && x.builtin));
    const groupDelete = await api<{ code: string }>('DELETE', '/groups/quarantine');
    assert.equal(groupDelete.body.code, 'ERR_GROUP_BUILTIN');
  });
});
