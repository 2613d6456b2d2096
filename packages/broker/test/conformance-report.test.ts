// CONFORMANCE.md is generated from the test names and must be current; the name parser is checked too.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { clausesOf, report, testNames } from '../scripts/conformance-report.ts';

test('CONFORMANCE.md is up to date (node packages/broker/scripts/conformance-report.ts)', () => {
  assert.equal(readFileSync(new URL('../CONFORMANCE.md', import.meta.url), 'utf8'), report());
});

test('clause ids are attributed to 3.1.1 or 5.0 by the naming convention', () => {
  assert.deepEqual(clausesOf('[MQTT-1.5.3-1] (v5 [MQTT-1.5.4-1]) ill-formed UTF-8'), {
    v311: ['1.5.3-1'],
    v5: ['1.5.4-1'],
    sections: [],
  });
  assert.deepEqual(clausesOf('[MQTT-3.3.4-7] v5 more publishes than Receive Maximum'), {
    v311: [],
    v5: ['3.3.4-7'],
    sections: [],
  });
  assert.deepEqual(clausesOf('[MQTT-3.1.4-1] v5 CONNECT with Receive Maximum 0 (§3.1.2.11.3)'), {
    v311: [],
    v5: ['3.1.4-1'],
    sections: ['3.1.2.11.3'],
  });
  assert.deepEqual(clausesOf('[MQTT-3.1.4-2] (v5 [MQTT-3.1.4-3]) takeover closes the old one (v5: 0x8E)'), {
    v311: ['3.1.4-2'],
    v5: ['3.1.4-3'],
    sections: [],
  });
  assert.deepEqual(testNames("test('a', () => {}); test(`b [x]`, async () => {}); test(\"it\\'s\", f)"), [
    'a',
    'b [x]',
    "it's",
  ]);
});

test('no clause id is left unconfirmed ([MQTT-x.y.z-?])', () => {
  assert.doesNotMatch(report(), /MQTT-[\d.]+-\?/);
});
