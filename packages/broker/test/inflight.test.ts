// The in-flight table against a Map: lookups, deletes, send order and packet id allocation under
// random churn, with restored (arbitrary, colliding) packet ids.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { InflightTable } from '../src/inflight.ts';

interface Entry {
  packetId: number;
  name: string;
}

function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

test('in-flight table: same answers as a Map under random churn, send order kept', () => {
  const rnd = prng(3);
  const table = new InflightTable<Entry>();
  const ref = new Map<number, Entry>();
  let next = 1;
  for (let step = 0; step < 50_000; step++) {
    const r = rnd();
    if (r < 0.5 && ref.size < 1000) {
      const id = table.allocate(next);
      // [MQTT-2.3.1-2] never an id in flight
      assert.equal(ref.has(id), false, `allocated ${id} while in flight`);
      assert.ok(id >= 1 && id <= 65_535);
      next = id === 65_535 ? 1 : id + 1;
      const e = { packetId: id, name: `m${step}` };
      table.set(id, e);
      ref.set(id, e);
    } else if (r < 0.95 && ref.size > 0) {
      // Mostly the oldest (acknowledgements come in order), sometimes any.
      const ids = [...ref.keys()];
      const id = rnd() < 0.8 ? ids[0]! : ids[Math.floor(rnd() * ids.length)]!;
      assert.equal(table.delete(id), true);
      ref.delete(id);
      assert.equal(table.delete(id), false);
    } else {
      const id = 1 + Math.floor(rnd() * 65_535);
      assert.equal(table.get(id), ref.get(id));
      assert.equal(table.has(id), ref.has(id));
    }
    assert.equal(table.size, ref.size);
  }
  assert.deepEqual(table.values(), [...ref.values()]);
});

test('in-flight table: restored packet ids that share a slot, a replaced entry, ids at the ends of the range', () => {
  const table = new InflightTable<Entry>();
  const ids = [16, 32, 1, 65_535, 48, 17, 4096 + 16];
  for (const id of ids) table.set(id, { packetId: id, name: `r${id}` });
  assert.equal(table.size, ids.length);
  for (const id of ids) assert.equal(table.get(id)?.name, `r${id}`);
  assert.equal(table.get(0), undefined);
  assert.equal(table.get(64), undefined);
  assert.deepEqual(
    table.values().map((e) => e.packetId),
    ids,
  );
  // Same packet id again: replaced, not added (and it moves to the end of the send order).
  table.set(16, { packetId: 16, name: 'again' });
  assert.equal(table.size, ids.length);
  assert.equal(table.get(16)?.name, 'again');
  assert.deepEqual(table.values().at(-1)?.name, 'again');
  // Allocation skips the ids in flight, wrapping after 65535.
  assert.equal(table.allocate(65_535), 2);
  assert.equal(table.allocate(16), 18);
  assert.throws(() => table.set(5, { packetId: 6, name: 'x' }), /another packet id/);
});
