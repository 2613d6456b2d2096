import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatParty } from '../src/commands/audit.ts';
import { mosquittoExample, parseAttributes, shellQuote } from '../src/commands/device.ts';
import { UsageError } from '../src/errors.ts';

describe('parseAttributes', () => {
  it('splits on the first = and keeps values as strings', () => {
    assert.deepEqual(parseAttributes(['room=lab', 'expr=a=b', 'empty='], []), {
      room: 'lab',
      expr: 'a=b',
      empty: '',
    });
  });
  for (const bad of ['novalue', '=value', '']) {
    it(`rejects '${bad}'`, () => assert.throws(() => parseAttributes([bad], []), UsageError));
  }
  it('rejects a key given twice', () => {
    assert.throws(() => parseAttributes(['a=1', 'a=2'], []), /given more than once/);
  });
  it('does not touch the prototype', () => {
    const attrs = parseAttributes(['__proto__=x'], []);
    assert.equal(Object.getPrototypeOf(attrs), Object.prototype);
    assert.equal(Object.hasOwn(attrs, '__proto__'), true);
  });
});

describe('mosquitto example line', () => {
  it('quotes only what the shell would split or expand', () => {
    assert.equal(shellQuote('sensor-1/ca.crt'), 'sensor-1/ca.crt');
    assert.equal(shellQuote('my dir/ca.crt'), "'my dir/ca.crt'");
    assert.equal(shellQuote("it's"), "'it'\\''s'");
    assert.equal(shellQuote('$HOME'), "'$HOME'");
  });
  it('names the files, the client id and the device topic', () => {
    assert.equal(
      mosquittoExample('mqtt.example', 'gw:7', {
        key: 'k dir/device.key',
        cert: 'd/device.crt',
        ca: 'd/ca.crt',
      }),
      "mosquitto_pub -h mqtt.example -p 8883 --cafile d/ca.crt --cert d/device.crt --key 'k dir/device.key' -i gw:7 -q 1 -t devices/gw:7/telemetry -m '{\"temperature\":21.5}'",
    );
  });
});

describe('formatParty', () => {
  it('shows { type, id } as type:id and strings as they are', () => {
    assert.equal(formatParty({ type: 'device', id: 'sensor-1' }), 'device:sensor-1');
    assert.equal(formatParty('system'), 'system');
    assert.equal(formatParty(null), '');
    assert.equal(formatParty(undefined), '');
  });
});
