// Policy documents are untrusted input: a table of malformed documents, each refused with its own code
// and the path of the offending field; and the lint rules.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { isAppError } from '../src/kernel/index.ts';
import { lintPolicy, validatePolicyDocument, type PolicyDocument } from '../src/modules/policy/index.ts';

const ok = { effect: 'allow', actions: ['mqtt:publish'], resources: ['topic/devices/${device.id}/#'] };
const doc = (statements: unknown[], extra: Record<string, unknown> = {}) => ({
  id: 'p1',
  statements,
  ...extra,
});

const malformed: [string, unknown, string, RegExp][] = [
  ['not an object', 'allow everything', 'ERR_POLICY_INVALID', /JSON object/],
  ['bad id', { id: 'Bad Id', statements: [ok] }, 'ERR_POLICY_INVALID', /^id:/],
  ['builtin-looking id', { id: 'builtin:x', statements: [ok] }, 'ERR_POLICY_INVALID', /^id:/],
  ['no statements', doc([]), 'ERR_POLICY_INVALID', /statements/],
  ['unknown top-level field', doc([ok], { Statement: [] }), 'ERR_POLICY_INVALID', /Statement: unknown field/],
  ['statement not an object', doc(['allow']), 'ERR_POLICY_INVALID', /statements\[0\]/],
  ['bad effect', doc([{ ...ok, effect: 'Allow' }]), 'ERR_POLICY_INVALID', /effect/],
  [
    'unknown statement field',
    doc([{ ...ok, resource: ['x'] }]),
    'ERR_POLICY_INVALID',
    /resource: unknown field/,
  ],
  [
    'duplicate sid',
    doc([
      { ...ok, sid: 'a' },
      { ...ok, sid: 'a' },
    ]),
    'ERR_POLICY_INVALID',
    /duplicate sid/,
  ],
  [
    'unknown action',
    doc([{ ...ok, actions: ['mqtt:pub'] }]),
    'ERR_POLICY_UNKNOWN_ACTION',
    /unknown action 'mqtt:pub' \(did you mean 'mqtt:publish'\?\)/,
  ],
  ['unknown service wildcard', doc([{ ...ok, actions: ['mqt:*'] }]), 'ERR_POLICY_UNKNOWN_ACTION', /mqt:\*/],
  [
    'partial wildcard action',
    doc([{ ...ok, actions: ['mqtt:pub*'] }]),
    'ERR_POLICY_UNKNOWN_ACTION',
    /mqtt:pub\*/,
  ],
  ['empty actions', doc([{ ...ok, actions: [] }]), 'ERR_POLICY_INVALID', /actions/],
  [
    'unknown variable',
    doc([{ ...ok, resources: ['topic/devices/${device.name}/#'] }]),
    'ERR_POLICY_BAD_VARIABLE',
    /\$\{device\.name\}/,
  ],
  [
    'unterminated variable',
    doc([{ ...ok, resources: ['topic/devices/${device.id/#'] }]),
    'ERR_POLICY_BAD_VARIABLE',
    /unterminated/,
  ],
  [
    'stray dollar',
    doc([{ ...ok, resources: ['topic/devices/$device.id/#'] }]),
    'ERR_POLICY_BAD_VARIABLE',
    /stray/,
  ],
  [
    'bad attribute variable',
    doc([{ ...ok, resources: ['topic/x/${device.attr.}/#'] }]),
    'ERR_POLICY_BAD_VARIABLE',
    /device\.attr\./,
  ],
  [
    '# not last',
    doc([{ ...ok, resources: ['topic/a/#/b'] }]),
    'ERR_POLICY_BAD_TOPIC_FILTER',
    /must be a whole level and the last/,
  ],
  ['# inside a level', doc([{ ...ok, resources: ['topic/a/b#'] }]), 'ERR_POLICY_BAD_TOPIC_FILTER', /#/],
  ['+ inside a level', doc([{ ...ok, resources: ['topic/a+/b'] }]), 'ERR_POLICY_BAD_TOPIC_FILTER', /\+/],
  [
    '* in a topic',
    doc([{ ...ok, resources: ['topic/devices/*'] }]),
    'ERR_POLICY_BAD_TOPIC_FILTER',
    /not an MQTT wildcard/,
  ],
  ['NUL in a topic', doc([{ ...ok, resources: ['topic/a\u0000b'] }]), 'ERR_POLICY_BAD_TOPIC_FILTER', /NUL/],
  ['empty topic', doc([{ ...ok, resources: ['topic/'] }]), 'ERR_POLICY_BAD_TOPIC_FILTER', /empty/],
  [
    'another tenant',
    doc([{ ...ok, resources: ['bulwark:t2:topic/#'] }]),
    'ERR_POLICY_BAD_RESOURCE',
    /another tenant/,
  ],
  [
    'tenant wildcard',
    doc([{ ...ok, resources: ['bulwark:*:device/*'] }]),
    'ERR_POLICY_BAD_RESOURCE',
    /tenant part/,
  ],
  ['no kind', doc([{ ...ok, resources: ['devices'] }]), 'ERR_POLICY_BAD_RESOURCE', /<kind>\/<id>/],
  ['bad kind', doc([{ ...ok, resources: ['Topic/a'] }]), 'ERR_POLICY_BAD_RESOURCE', /kind/],
  [
    'both resources and notResources',
    doc([{ ...ok, effect: 'deny', notResources: ['topic/a'] }]),
    'ERR_POLICY_INVALID',
    /exactly one/,
  ],
  ['neither', doc([{ effect: 'allow', actions: ['mqtt:publish'] }]), 'ERR_POLICY_INVALID', /exactly one/],
  [
    'notResources on allow',
    doc([{ effect: 'allow', actions: ['mqtt:publish'], notResources: ['topic/a'] }]),
    'ERR_POLICY_INVALID',
    /only deny/,
  ],
  [
    'bad CIDR',
    doc([{ ...ok, conditions: { sourceIp: ['10.0.0.1/8'] } }]),
    'ERR_POLICY_BAD_CONDITION',
    /zero host bits/,
  ],
  [
    'not a CIDR',
    doc([{ ...ok, conditions: { sourceIp: ['intranet'] } }]),
    'ERR_POLICY_BAD_CONDITION',
    /intranet/,
  ],
  [
    'bad time',
    doc([{ ...ok, conditions: { timeWindow: { from: '8:00', to: '18:00' } } }]),
    'ERR_POLICY_BAD_CONDITION',
    /HH:MM/,
  ],
  [
    'bad day',
    doc([{ ...ok, conditions: { timeWindow: { from: '08:00', to: '18:00', days: ['monday'] } } }]),
    'ERR_POLICY_BAD_CONDITION',
    /monday/,
  ],
  [
    'empty window',
    doc([{ ...ok, conditions: { timeWindow: { from: '08:00', to: '08:00' } } }]),
    'ERR_POLICY_BAD_CONDITION',
    /differ/,
  ],
  [
    'mfa not boolean',
    doc([{ ...ok, conditions: { mfa: 'yes' } }]),
    'ERR_POLICY_BAD_CONDITION',
    /true or false/,
  ],
  [
    'unknown condition',
    doc([{ ...ok, conditions: { sourceIP: ['10.0.0.0/8'] } }]),
    'ERR_POLICY_BAD_CONDITION',
    /did you mean sourceIp/,
  ],
  [
    'unknown cert attribute',
    doc([{ ...ok, conditions: { certAttr: { issuer: ['x'] } } }]),
    'ERR_POLICY_BAD_CONDITION',
    /certificate attribute/,
  ],
  [
    'mixed problems',
    doc([{ ...ok, actions: ['nope'], resources: ['topic/a/#/b'] }]),
    'ERR_POLICY_INVALID',
    /2 problems/,
  ],
];

describe('policy validation refuses malformed documents', () => {
  for (const [name, input, code, message] of malformed) {
    test(name, () => {
      assert.throws(
        () => validatePolicyDocument(input, 't1'),
        (e: unknown) => {
          assert.ok(isAppError(e), String(e));
          assert.equal(e.code, code);
          const text = [e.message, ...(e.errors ?? []).map((x) => `${x.path}: ${x.message}`)].join('\n');
          assert.match(text, message);
          return true;
        },
      );
    });
  }

  test('a valid document is normalised: shorthand resources get the tenant variable', () => {
    const d = validatePolicyDocument(
      doc([
        ok,
        {
          effect: 'allow',
          actions: ['devices:*', 'ota:download'],
          resources: ['bulwark:t1:device/*', 'fleet/plant-a/*'],
        },
        {
          sid: 'office-hours',
          effect: 'deny',
          actions: ['*'],
          notResources: ['topic/devices/${device.id}/status'],
          conditions: {
            sourceIp: ['10.0.0.0/8', '2001:db8::/32'],
            timeWindow: { from: '22:00', to: '06:00', days: ['sat', 'sun'] },
            deviceAttr: { hw: ['b', 'c'] },
            certAttr: { serial: ['01'] },
            mfa: false,
          },
        },
      ]),
      't1',
    );
    assert.deepEqual(d.statements[0]?.resources, [
      'bulwark:${principal.tenant}:topic/devices/${device.id}/#',
    ]);
    assert.deepEqual(d.statements[1]?.resources, [
      'bulwark:t1:device/*',
      'bulwark:${principal.tenant}:fleet/plant-a/*',
    ]);
    assert.equal(d.statements[2]?.sid, 'office-hours');
  });
});

describe('lint', () => {
  const findings = (statements: PolicyDocument['statements']) =>
    lintPolicy({ id: 'p', statements }).map((f) => `${f.rule}:${f.severity}:${f.statement}`);
  test('flags overly permissive statements', () => {
    assert.deepEqual(
      findings([
        { effect: 'allow', actions: ['mqtt:publish'], resources: ['bulwark:${device.tenant}:topic/#'] },
        { effect: 'allow', actions: ['*'], resources: ['bulwark:${principal.tenant}:*'] },
        { effect: 'allow', actions: ['mqtt:subscribe'], resources: ['bulwark:t:topic/devices/+/commands'] },
        { effect: 'allow', actions: ['mqtt:*'], resources: ['bulwark:t:topic/+/status'] },
        { effect: 'allow', actions: ['mqtt:publish'], resources: ['bulwark:t:topic/broadcast/x'] },
      ]),
      [
        'topic-everything:high:0',
        'wildcard-action:high:1',
        'resource-everything:high:1',
        'other-devices-topics:medium:2',
        'service-wildcard-action:medium:3',
        'topic-everything:high:3',
        'allow-not-scoped-to-device:low:4',
      ],
    );
  });
  test('is quiet about scoped statements and denies', () => {
    assert.deepEqual(
      findings([
        {
          effect: 'allow',
          actions: ['mqtt:publish'],
          resources: ['bulwark:${device.tenant}:topic/devices/${device.id}/#'],
        },
        { effect: 'deny', actions: ['*'], resources: ['bulwark:${device.tenant}:topic/#'] },
        { effect: 'allow', actions: ['devices:read'], resources: ['bulwark:t:device/*'] },
      ]),
      [],
    );
  });
});
