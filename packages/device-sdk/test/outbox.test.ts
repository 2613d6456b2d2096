import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileOutbox, memoryOutbox, OutboxFullError, parseOutboxFile } from '../src/index.ts';

const dir = () => {
  const path = mkdtempSync(join(tmpdir(), 'bulwark-outbox-'));
  return { path, [Symbol.dispose]: () => rmSync(path, { recursive: true, force: true }) };
};
const buf = (s: string) => Buffer.from(s);

test('file outbox: survives a reopen, keeps order, forgets removed entries; file is 0600', async () => {
  using d = dir();
  const file = join(d.path, 'outbox.log');
  const a = await fileOutbox(file);
  for (let i = 1; i <= 5; i++) await a.append('devices/x/telemetry', buf(`{"i":${i}}`), 1000 + i);
  await a.remove(2);
  await a.remove(4);
  await a.close();
  assert.equal(statSync(file).mode & 0o777, 0o600);

  const b = await fileOutbox(file);
  assert.deepEqual(
    [...b.entries()].map((e) => [e.seq, e.payload.toString(), e.ts]),
    [
      [1, '{"i":1}', 1001],
      [3, '{"i":3}', 1003],
      [5, '{"i":5}', 1005],
    ],
  );
  const { entry } = await b.append('devices/x/telemetry', buf('{"i":6}'), 1006);
  assert.equal(entry.seq, 6, 'sequence numbers continue after a restart');
  for (const s of [1, 3, 5, 6]) await b.remove(s);
  assert.equal(b.count, 0);
  await b.close();
  assert.equal(statSync(file).size, 0, 'an empty outbox leaves an empty file');
});

test('file outbox: a torn last line (crash mid-write) is dropped and the file repaired', async () => {
  using d = dir();
  const file = join(d.path, 'outbox.log');
  const a = await fileOutbox(file);
  await a.append('t/1', buf('{"a":1}'), 1);
  await a.close();
  appendFileSync(file, '{"s":2,"t":"t/1","p":"e30=","ts":');
  const b = await fileOutbox(file);
  assert.deepEqual(
    [...b.entries()].map((e) => e.seq),
    [1],
  );
  await b.append('t/1', buf('{"b":2}'), 2);
  await b.close();
  const c = await fileOutbox(file);
  assert.deepEqual(
    [...c.entries()].map((e) => e.payload.toString()),
    ['{"a":1}', '{"b":2}'],
  );
  await c.close();
});

test('outbox file parser: malformed lines are skipped, acks remove, order by sequence', () => {
  const cases: [string, number[], number][] = [
    ['', [], 0],
    ['garbage\n', [], 1],
    ['{"s":1,"t":"a","p":"","ts":1}\n{"a":1}\n', [], 0],
    ['{"s":2,"t":"a","p":"","ts":1}\n{"s":1,"t":"a","p":"","ts":1}\n', [1, 2], 0],
    ['{"s":"1","t":"a","p":"","ts":1}\n', [], 1],
    ['{"s":-1,"t":"a","p":"","ts":1}\n', [], 1],
    ['{"s":1.5,"t":"a","p":"","ts":1}\n', [], 1],
    ['{"s":1,"t":5,"p":"","ts":1}\n', [], 1],
    ['null\n[1]\n"x"\n', [], 3],
    ['{"a":"1"}\n', [], 1],
    ['{"s":1,"t":"a","p":"","ts":1}\n{"s":3,"t":"a","p":"', [1], 0],
  ];
  for (const [text, seqs, skipped] of cases) {
    const r = parseOutboxFile(text);
    assert.deepEqual(
      r.entries.map((e) => e.seq),
      seqs,
      JSON.stringify(text),
    );
    assert.equal(r.skipped, skipped, JSON.stringify(text));
  }
  assert.equal(parseOutboxFile('{"a":9}\n').nextSeq, 10, 'never reuses an acknowledged sequence number');
});

test('size cap: reject by default, or drop the oldest', async () => {
  const rejecting = memoryOutbox({ maxBytes: 1024 });
  await rejecting.append('t', Buffer.alloc(600), 1);
  await assert.rejects(rejecting.append('t', Buffer.alloc(600), 2), OutboxFullError);
  assert.equal(rejecting.count, 1);

  const dropping = memoryOutbox({ maxBytes: 1024, whenFull: 'drop-oldest' });
  await dropping.append('t', Buffer.alloc(400), 1);
  await dropping.append('t', Buffer.alloc(400), 2);
  const { dropped } = await dropping.append('t', Buffer.alloc(400), 3);
  assert.deepEqual(
    dropped.map((e) => e.seq),
    [1],
  );
  assert.deepEqual(
    [...dropping.entries()].map((e) => e.seq),
    [2, 3],
  );
  await assert.rejects(dropping.append('t', Buffer.alloc(2000), 4), OutboxFullError, 'larger than the cap');
});

test('file outbox: compaction keeps only live entries and is transparent', async () => {
  using d = dir();
  const file = join(d.path, 'outbox.log');
  const a = await fileOutbox(file);
  const big = Buffer.alloc(4000, 'x');
  await a.append('t', buf('{"keep":1}'), 1);
  for (let i = 0; i < 100; i++) {
    const { entry } = await a.append('t', big, 2);
    await a.remove(entry.seq);
  }
  assert.ok(statSync(file).size < 64 * 1024, `file compacted (${statSync(file).size} bytes)`);
  await a.close();
  const b = await fileOutbox(file);
  assert.deepEqual(
    [...b.entries()].map((e) => e.payload.toString()),
    ['{"keep":1}'],
  );
  await b.close();
  writeFileSync(file, readFileSync(file)); // still readable as plain text
});
