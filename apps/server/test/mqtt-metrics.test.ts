// GET /api/v1/metrics: Prometheus text, authenticated and authorized (metrics:read), showing the
// broker's traffic and back-pressure and the telemetry queue; and a fast device that ignores Receive
// Maximum is slowed down over real mTLS, not disconnected.
import 'reflect-metadata';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { renderPrometheus } from '../src/modules/metrics/index.ts';
import {
  connectDevice,
  enrollDevice,
  startPlatform,
  type DeviceCredentials,
  type Platform,
} from '../../../test/support/platform.ts';

/** Parses the text format into name{labels} -> value, checking every line is well formed. */
function parse(text: string): Map<string, number> {
  const out = new Map<string, number>();
  const typed = new Set<string>();
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const meta = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.+)$/.exec(line);
    if (meta) {
      if (meta[1] === 'TYPE') {
        assert.match(meta[3]!, /^(counter|gauge)$/);
        typed.add(meta[2]!);
      }
      continue;
    }
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (-?[0-9.e+]+|NaN|[+-]Inf)$/.exec(line);
    assert.ok(sample, `malformed line ${JSON.stringify(line)}`);
    assert.ok(typed.has(sample[1]!), `${sample[1]} has no TYPE line before it`);
    out.set(`${sample[1]}${sample[2] ?? ''}`, Number(sample[3]));
  }
  return out;
}

test('renderPrometheus: HELP/TYPE lines, label escaping, special values', () => {
  const text = renderPrometheus([
    { name: 'a_total', help: 'line\\one\ntwo', type: 'counter', samples: [{ value: 3 }] },
    {
      name: 'b',
      help: 'b',
      type: 'gauge',
      samples: [
        { labels: { k: 'q"\\\n' }, value: NaN },
        { labels: { k: 'x' }, value: Infinity },
      ],
    },
  ]);
  assert.equal(
    text,
    [
      '# HELP a_total line\\\\one\\ntwo',
      '# TYPE a_total counter',
      'a_total 3',
      '# HELP b b',
      '# TYPE b gauge',
      'b{k="q\\"\\\\\\n"} NaN',
      'b{k="x"} +Inf',
      '',
    ].join('\n'),
  );
});

describe('metrics endpoint', () => {
  let p: Platform;
  let device: DeviceCredentials;
  before(async () => {
    p = await startPlatform();
    device = await enrollDevice(p, 'meter-1');
  });
  after(async () => {
    await p.close();
  });

  test('needs a token with metrics:read', async () => {
    const anonymous = await p.api('GET', '/api/v1/metrics', undefined, '');
    assert.equal(anonymous.status, 401);
    const scoped = await p.api<{ secret: string }>('POST', '/api/v1/accounts/me/tokens', {
      name: 'no-metrics',
      scope: { actions: ['devices:read'] },
    });
    assert.equal(scoped.status, 201, JSON.stringify(scoped.body));
    const denied = await p.api<{ code: string }>('GET', '/api/v1/metrics', undefined, scoped.body.secret);
    assert.equal(denied.status, 403);
    assert.equal(denied.body.code, 'ERR_POLICY_DENIED');
  });

  test('a fast MQTT 5 device ignoring Receive Maximum is slowed, not disconnected; the metrics show it', async () => {
    const c = await connectDevice(p, device, { clientId: 'meter-1' });
    let closed = false;
    c.on('close', () => (closed = true));
    try {
      const total = 3000;
      const codes = await Promise.all(
        Array.from(
          { length: total },
          (_, n) =>
            new Promise<number>((resolve, reject) =>
              c.publish('devices/meter-1/telemetry', JSON.stringify({ n }), { qos: 1 }, (err, packet) =>
                err ? reject(err) : resolve((packet as { reasonCode?: number } | undefined)?.reasonCode ?? 0),
              ),
            ),
        ),
      );
      assert.equal(closed, false);
      assert.equal(
        codes.filter((rc) => rc !== 0).length,
        0,
        'every publish acknowledged as stored (none refused)',
      );
      const r = await p.api<string>('GET', '/api/v1/metrics');
      assert.equal(r.status, 200);
      assert.match(String(r.headers['content-type']), /^text\/plain/);
      const m = parse(r.body);
      assert.equal(m.get('bulwark_mqtt_connections'), 1);
      assert.ok((m.get('bulwark_mqtt_messages_received_total') ?? 0) >= total);
      assert.ok((m.get('bulwark_mqtt_socket_pauses_total') ?? 0) > 0, 'the device was slowed down');
      assert.equal(m.get('bulwark_mqtt_pending_inbound'), 0);
      assert.equal(m.get('bulwark_mqtt_paused_sockets'), 0);
      assert.equal(m.get('bulwark_telemetry_queue_depth'), 0);
      assert.equal(m.get('bulwark_telemetry_queue_capacity'), p.app.config.telemetry.queueMax);
      for (const name of [
        'bulwark_mqtt_messages_sent_total',
        'bulwark_mqtt_messages_dropped_total',
        'bulwark_mqtt_refused_total',
        'bulwark_mqtt_sessions',
        'bulwark_mqtt_subscriptions',
        'bulwark_mqtt_queued_messages',
        'bulwark_mqtt_inflight_messages',
        'process_resident_memory_bytes',
      ]) {
        assert.ok(m.has(name), `${name} is exposed`);
      }
    } finally {
      await c.endAsync();
    }
  });
});
