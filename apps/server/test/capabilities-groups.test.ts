// Capability profiles as group-query and policy input, end to end over a real MQTT connection: a device's
// report on devices/{id}/capabilities moves it into and out of a dynamic group with a `cap.` query, and
// a `deviceCap` condition recompiles its live session when a new capability version is stored.
import 'reflect-metadata';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { MqttClient } from 'mqtt';
import { capabilityFields } from '@bulwark/protocol';
import { isAppError } from '../src/kernel/index.ts';
import { matchesQuery, parseQuery } from '../src/modules/devices/index.ts';
import { validatePolicyDocument } from '../src/modules/policy/index.ts';
import {
  connectDevice,
  enrollDevice,
  startPlatform,
  waitFor,
  type Platform,
} from '../../../test/support/platform.ts';

const publishRc = (c: MqttClient, topic: string, payload: string) =>
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

const report = (over: Record<string, unknown> = {}) =>
  JSON.stringify({
    hardware: { model: 'gw-1', revision: 'b' },
    firmware: { version: '1.4.2' },
    updateMethod: 'ab-partition',
    keyStorage: 'tpm',
    tls: { versions: ['TLSv1.2', 'TLSv1.3'], keyTypes: ['ec'] },
    listeningPorts: [],
    sdk: { name: '@bulwark/device', version: '0.1.0' },
    ...over,
  });

describe('capability fields: flattening and validation', () => {
  test('a report flattens into cap.* fields', () => {
    const f = capabilityFields(
      JSON.parse(
        report({
          listeningPorts: [
            { protocol: 'tcp', address: '0.0.0.0', port: 22 },
            { protocol: 'tcp6', address: '::', port: 22 },
            { protocol: 'udp', address: '0.0.0.0', port: 5353 },
          ],
          software: [{ name: 'openssl', version: '3.0.13' }],
        }),
      ) as Record<string, unknown>,
    );
    assert.equal(f['cap.hardware.model'], 'gw-1');
    assert.equal(f['cap.firmware.version'], '1.4.2');
    assert.equal(f['cap.updateMethod'], 'ab-partition');
    assert.equal(f['cap.update.method'], 'ab-partition');
    assert.equal(f['cap.tls.versions'], 'TLSv1.2,TLSv1.3');
    assert.equal(f['cap.listeningPorts'], '3');
    assert.equal(f['cap.listeningPorts.ports'], '22,5353');
    assert.equal(f['cap.software'], 'openssl');
    assert.equal(capabilityFields({})['cap.listeningPorts'], undefined, 'absent, not 0');
    const target = { id: 'd', status: 'active', fleet: '', attributes: {}, capabilities: f };
    assert.ok(
      matchesQuery(parseQuery('cap.tls.versions contains TLSv1.3 and cap.listeningPorts > 2'), target),
    );
    assert.ok(matchesQuery(parseQuery('cap.listeningPorts.ports contains 22'), target));
    assert.ok(!matchesQuery(parseQuery('has cap.firmware.version'), { ...target, capabilities: {} }));
  });

  const badQueries: [string, RegExp][] = [
    ['cap.firmware = 1', /unknown capability field 'cap.firmware' .*at position 1/],
    ['cap.hardware.serialNumber = x', /unknown capability field 'cap.hardware.serialNumber'/],
    ['attr.a = 1 and cap.Listeningports > 0', /unknown capability field 'cap.Listeningports'.*position 16/],
    ['cap. = 1', /unknown capability field 'cap.'/],
    ['cap.sbom has', /unknown capability field 'cap.sbom'/],
  ];
  for (const [q, message] of badQueries)
    test(`group query ${JSON.stringify(q)} is refused`, () =>
      assert.throws(
        () => parseQuery(q),
        (e: unknown) => isAppError(e) && e.code === 'ERR_GROUP_QUERY_INVALID' && message.test(e.message),
      ));

  const badConditions: [string, unknown, RegExp][] = [
    ['unknown field', { 'cap.ports': { '>': 0 } }, /deviceCap\.cap\.ports: unknown capability field/],
    ['no cap. prefix', { listeningPorts: { '>': 0 } }, /deviceCap\.listeningPorts: unknown capability field/],
    [
      'unknown operator',
      { 'cap.listeningPorts': { gt: 0 } },
      /deviceCap\.cap\.listeningPorts\.gt: unknown operator/,
    ],
    ['empty operand', { 'cap.firmware.version': { '<': '' } }, /must be a non-empty string or a number/],
    ['not an object', { 'cap.keyStorage': 'tpm' }, /must be a list of values or/],
    ['empty', {}, /deviceCap: must be an object/],
  ];
  for (const [name, deviceCap, message] of badConditions)
    test(`policy condition deviceCap: ${name} is refused`, () =>
      assert.throws(
        () =>
          validatePolicyDocument({
            id: 'p',
            statements: [
              { effect: 'deny', actions: ['mqtt:connect'], resources: ['*'], conditions: { deviceCap } },
            ],
          }),
        (e: unknown) => isAppError(e) && e.code === 'ERR_POLICY_BAD_CONDITION' && message.test(e.message),
      ));
});

describe('capability profiles in dynamic groups and policy conditions (MQTT)', () => {
  let p: Platform;
  let client: MqttClient;
  const api = <T = Record<string, unknown>>(method: string, path: string, body?: unknown) =>
    p.api<T>(method, `/api/v1${path}`, body);
  const members = async (group: string) =>
    (await api<{ items: string[] }>('GET', `/groups/${group}/members`)).body.items;
  const reportCaps = async (over: Record<string, unknown> = {}) =>
    assert.equal(await publishRc(client, 'devices/gw-1/capabilities', report(over)), 0);

  before(async () => {
    p = await startPlatform();
    const creds = await enrollDevice(p, 'gw-1');
    await enrollDevice(p, 'gw-2'); // never reports: in no capability group, not denied
    client = await connectDevice(p, creds, { clientId: 'gw-1' });
  });
  after(async () => {
    await client?.endAsync();
    await p.close();
  });

  test('a dynamic group with a cap. query picks the device up and drops it after a new report', async () => {
    const g = await api('POST', '/groups', {
      name: 'ab-old-fw',
      kind: 'dynamic',
      query: 'cap.update.method = ab-partition and cap.firmware.version < 2.0',
    });
    assert.equal(g.status, 201, JSON.stringify(g.body));
    assert.deepEqual(await members('ab-old-fw'), [], 'nothing reported yet');

    await reportCaps();
    await waitFor(async () => ((await members('ab-old-fw')).includes('gw-1') ? true : undefined));
    assert.deepEqual(await members('ab-old-fw'), ['gw-1']);
    const caps = await api<{ version: number }>('GET', '/devices/gw-1/capabilities');
    assert.equal(caps.body.version, 1);

    // A group created after the report is filled from the stored profiles.
    const tpm = await api('POST', '/groups', { name: 'tpm', kind: 'dynamic', query: 'cap.keyStorage = tpm' });
    assert.equal(tpm.status, 201);
    assert.deepEqual(await members('tpm'), ['gw-1']);

    await reportCaps({ firmware: { version: '2.1.0' } });
    await waitFor(async () => ((await members('ab-old-fw')).length === 0 ? true : undefined));
    assert.deepEqual(await members('tpm'), ['gw-1'], 'still matches');

    const bad = await api<{ code: string; message: string }>('POST', '/groups', {
      name: 'bad',
      kind: 'dynamic',
      query: 'cap.firmware.versoin < 2',
    });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.code, 'ERR_GROUP_QUERY_INVALID');
    assert.match(JSON.stringify(bad.body), /unknown capability field 'cap.firmware.versoin'/);
  });

  test('a deviceCap condition on cap.listeningPorts denies publish after a report with a listening port', async () => {
    const created = await api('POST', '/policies', {
      id: 'no-listeners',
      statements: [
        {
          sid: 'closed-devices-only',
          effect: 'deny',
          actions: ['mqtt:publish'],
          resources: ['topic/devices/${device.id}/data'],
          conditions: { deviceCap: { 'cap.listeningPorts': { '>': 0 } } },
        },
      ],
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    assert.equal((await api('POST', '/policies/no-listeners/attach', { targetType: 'tenant' })).status, 200);
    assert.equal(await publishRc(client, 'devices/gw-1/data', '{"x":1}'), 0, 'clean report: allowed');

    await reportCaps({ listeningPorts: [{ protocol: 'tcp', address: '0.0.0.0', port: 22 }] });
    await waitFor(async () =>
      (await publishRc(client, 'devices/gw-1/data', '{"x":2}')) === 0x87 ? true : undefined,
    );
    const explained = await api<{ allowed: boolean; matched: { sid: string }[] }>(
      'POST',
      '/policies/explain',
      {
        principal: { type: 'device', id: 'gw-1' },
        action: 'mqtt:publish',
        resource: 'topic/devices/gw-1/data',
      },
    );
    assert.equal(explained.body.allowed, false, JSON.stringify(explained.body));
    assert.deepEqual(
      explained.body.matched.map((m) => m.sid),
      ['closed-devices-only'],
    );
    const other = await api<{ allowed: boolean }>('POST', '/policies/explain', {
      principal: { type: 'device', id: 'gw-2' },
      action: 'mqtt:publish',
      resource: 'topic/devices/gw-2/data',
    });
    assert.equal(other.body.allowed, true, 'a device that never reported is not denied');

    await reportCaps({ listeningPorts: [] });
    await waitFor(async () =>
      (await publishRc(client, 'devices/gw-1/data', '{"x":3}')) === 0 ? true : undefined,
    );
    const caps = await api<{ version: number }>('GET', '/devices/gw-1/capabilities');
    assert.equal(caps.body.version, 4);
  });
});
