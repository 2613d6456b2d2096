import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { backends } from '../../../test/support/db.ts';
import { fixedClock, isAppError } from '../src/kernel/index.ts';
import {
  createBatcher,
  createTelemetryService,
  createTelemetryStore,
  parsePayload,
} from '../src/modules/telemetry/index.ts';

describe('telemetry payload parser refuses malformed input', () => {
  const bad: [string, Buffer, string][] = [
    ['not JSON', Buffer.from('temp=21'), 'ERR_TELEMETRY_NOT_JSON'],
    ['truncated JSON', Buffer.from('{"temp":'), 'ERR_TELEMETRY_NOT_JSON'],
    [
      'invalid UTF-8',
      Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d]),
      'ERR_TELEMETRY_NOT_JSON',
    ],
    ['array', Buffer.from('[1,2]'), 'ERR_TELEMETRY_NOT_OBJECT'],
    ['number', Buffer.from('42'), 'ERR_TELEMETRY_NOT_OBJECT'],
    ['null', Buffer.from('null'), 'ERR_TELEMETRY_NOT_OBJECT'],
    ['string', Buffer.from('"x"'), 'ERR_TELEMETRY_NOT_OBJECT'],
    ['empty', Buffer.alloc(0), 'ERR_TELEMETRY_NOT_JSON'],
    ['too large', Buffer.from(JSON.stringify({ a: 'x'.repeat(200) })), 'ERR_TELEMETRY_TOO_LARGE'],
  ];
  for (const [name, payload, code] of bad) {
    test(name, () =>
      assert.throws(
        () => parsePayload(payload, 128),
        (e) => isAppError(e) && e.code === code,
      ),
    );
  }
  test('a JSON object passes verbatim', () =>
    assert.equal(parsePayload(Buffer.from('{"temp":21.5}'), 128), '{"temp":21.5}'));
});

describe('group commit', () => {
  test('callers resolve only after their batch is written, in batches', async () => {
    const writes: number[][] = [];
    const b = createBatcher<number>({
      write: async (items) => {
        await new Promise((r) => setTimeout(r, 5));
        writes.push([...items]);
      },
      maxSize: 3,
      maxDelayMs: 1000,
      maxPending: 100,
      onOverflow: () => new Error('full'),
    });
    const done: number[] = [];
    const ps = [1, 2, 3, 4, 5, 6, 7].map((n) => b.add(n).then(() => done.push(n)));
    await new Promise((r) => setTimeout(r, 30));
    assert.deepEqual(writes, [
      [1, 2, 3],
      [4, 5, 6],
    ]);
    assert.deepEqual(done, [1, 2, 3, 4, 5, 6], 'item 7 waits for its batch');
    await b.flush();
    await Promise.all(ps);
    assert.deepEqual(writes[2], [7]);
  });
  test('a failed write rejects every caller of that batch', async () => {
    const b = createBatcher<number>({
      write: async () => {
        throw new Error('disk full');
      },
      maxSize: 10,
      maxDelayMs: 1,
      maxPending: 100,
      onOverflow: () => new Error('full'),
    });
    const results = await Promise.allSettled([b.add(1), b.add(2)]);
    assert.deepEqual(
      results.map((r) => r.status),
      ['rejected', 'rejected'],
    );
  });
  test('past maxPending new items are refused at once, not queued without bound', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const b = createBatcher<number>({
      write: () => gate,
      maxSize: 2,
      maxDelayMs: 0,
      maxPending: 2,
      onOverflow: () => new Error('full'),
    });
    const first = [b.add(1), b.add(2)];
    await assert.rejects(b.add(3), /full/);
    release();
    await Promise.all(first);
    await b.add(4);
  });
});

for (const backend of backends) {
  describe(`telemetry store (${backend.name})`, { skip: backend.skip }, () => {
    test('ingest, then query by time range with keyset paging', async () => {
      const { db, cleanup } = await backend.open();
      try {
        const clock = fixedClock(Date.parse('2026-11-01T00:00:00Z'));
        const svc = createTelemetryService({
          store: createTelemetryStore(db),
          clock,
          options: { maxPayloadBytes: 1024, batchMaxSize: 50, batchMaxDelayMs: 1, queueMax: 1000 },
        });
        const pending: Promise<void>[] = [];
        for (let i = 0; i < 25; i++) {
          pending.push(
            svc.ingest('t1', 'd1', i % 5 === 0 ? 'power' : undefined, Buffer.from(JSON.stringify({ i }))),
          );
          clock.advance(1000);
        }
        await svc.ingest('t1', 'other', undefined, Buffer.from('{"x":1}'));
        await svc.ingest('t2', 'd1', undefined, Buffer.from('{"x":1}'));
        await Promise.all(pending);

        const all = [];
        let cursor: string | undefined;
        do {
          const page = await svc.query('t1', 'd1', { limit: 10, ...(cursor ? { cursor } : {}) });
          all.push(...page.items);
          cursor = page.nextCursor ?? undefined;
        } while (cursor);
        assert.equal(all.length, 25);
        assert.deepEqual(
          all.map((p) => p.data.i),
          [...Array(25).keys()],
        );
        assert.equal(all[0]?.ts, '2026-11-01T00:00:00.000Z');
        assert.equal(all[0]?.stream, 'power');

        const ranged = await svc.query('t1', 'd1', {
          from: '2026-11-01T00:00:10Z',
          to: '2026-11-01T00:00:14Z',
        });
        assert.deepEqual(
          ranged.items.map((p) => p.data.i),
          [10, 11, 12, 13, 14],
        );
        const desc = await svc.query('t1', 'd1', { order: 'desc', limit: 2 });
        assert.deepEqual(
          desc.items.map((p) => p.data.i),
          [24, 23],
        );
        const stream = await svc.query('t1', 'd1', { stream: 'power' });
        assert.deepEqual(
          stream.items.map((p) => p.data.i),
          [0, 5, 10, 15, 20],
        );
      } finally {
        await cleanup();
      }
    });

    test('refused payloads store nothing; bad ranges and cursors are refused', async () => {
      const { db, cleanup } = await backend.open();
      try {
        const svc = createTelemetryService({
          store: createTelemetryStore(db),
          clock: fixedClock(0),
          options: { maxPayloadBytes: 64, batchMaxSize: 10, batchMaxDelayMs: 1, queueMax: 100 },
        });
        await assert.rejects(
          svc.ingest('t', 'd', undefined, Buffer.from('[1]')),
          (e) => isAppError(e) && e.code === 'ERR_TELEMETRY_NOT_OBJECT',
        );
        assert.equal((await db.all('SELECT * FROM telemetry')).length, 0);
        await assert.rejects(
          svc.query('t', 'd', { from: 'yesterday' }),
          (e) => isAppError(e) && e.code === 'ERR_TELEMETRY_BAD_RANGE',
        );
        await assert.rejects(
          svc.query('t', 'd', { from: '2026-02-01T00:00:00Z', to: '2026-01-01T00:00:00Z' }),
          (e) => isAppError(e) && e.code === 'ERR_TELEMETRY_BAD_RANGE',
        );
        await assert.rejects(
          svc.query('t', 'd', { cursor: 'garbage!!' }),
          (e) => isAppError(e) && e.code === 'ERR_PAGE_CURSOR',
        );
      } finally {
        await cleanup();
      }
    });
  });
}
