// The behaviour every SessionStore and RetainedStore implementation must have. The broker's in-memory
// stores run it here; the platform's SQL stores run it on SQLite and PostgreSQL.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { RetainedStore, SessionStore, StoredMessage, StoredSession } from '../src/index.ts';

export interface Opened<S> {
  store: S;
  /** A second store over the same data, as another process or a restarted one would open it. */
  reopen?(): Promise<S>;
  cleanup(): Promise<void>;
}

const message = (seq: number, extra: Partial<StoredMessage> = {}): StoredMessage => ({
  seq,
  topic: `t/${seq}`,
  payload: Buffer.from(`m${seq}`),
  qos: 1,
  retain: false,
  ...extra,
});

const plain = (m: StoredMessage): StoredMessage => ({ ...m, payload: Buffer.from(m.payload) });

export function sessionStoreContract(
  name: string,
  open: () => Promise<Opened<SessionStore>>,
  opts: { skip?: string | false } = {},
): void {
  const t = (title: string, fn: (store: SessionStore, o: Opened<SessionStore>) => Promise<void>): void => {
    test(`${name}: ${title}`, { skip: opts.skip ?? false }, async () => {
      const o = await open();
      try {
        await fn(o.store, o);
      } finally {
        await o.cleanup();
      }
    });
  };

  const session: StoredSession = {
    clientId: 'dev-1',
    expiryInterval: 3600,
    subscriptions: [
      { filter: 'cmd/#', qos: 1, noLocal: false, retainAsPublished: false, retainHandling: 0 },
      {
        filter: '$share/g/jobs/+',
        qos: 2,
        noLocal: false,
        retainAsPublished: true,
        retainHandling: 2,
        subscriptionIdentifier: 7,
      },
    ],
    inflight: [
      { ...message(5, { qos: 2 }), packetId: 9, state: 'publish' },
      { topic: 'x', payload: Buffer.alloc(0), qos: 2, retain: true, packetId: 10, state: 'pubrel' },
    ],
    awaitingRelease: [3, 4],
    disconnectedAt: 1_700_000_000_000,
  };

  t('load of an unknown client is undefined; save then load round-trips the session', async (store) => {
    assert.equal(await store.load('nobody'), undefined);
    await store.save(session);
    const got = await store.load('dev-1');
    assert.ok(got);
    const { lastSeq: _lastSeq, ...rest } = got;
    assert.deepEqual(
      { ...rest, inflight: rest.inflight.map((i) => ({ ...i, payload: Buffer.from(i.payload) })) },
      session,
    );
    // save replaces
    const { disconnectedAt: _connected, ...online } = session;
    await store.save({ ...online, subscriptions: [] });
    const again = await store.load('dev-1');
    assert.deepEqual(again?.subscriptions, []);
    assert.equal(again?.disconnectedAt, undefined);
  });

  t('queue: fetch after a cursor in seq order without removing; ack removes', async (store) => {
    await store.save({ ...session, inflight: [] });
    const props = {
      payloadFormatIndicator: true,
      contentType: 'application/json',
      responseTopic: 'r/1',
      correlationData: Buffer.from([0, 1, 2]),
      userProperties: { k: 'v', multi: ['a', 'b'] },
    };
    await store.enqueue('dev-1', [
      message(10, { properties: props, expiresAt: 1_800_000_000_000, subscriptionIds: [1, 7] }),
      message(11, { qos: 2, retain: true }),
    ]);
    await store.enqueue('dev-1', [message(12, { payload: Buffer.alloc(0) })]);
    const all = await store.fetch('dev-1', 0, 10);
    assert.deepEqual(
      all.map(plain),
      [
        message(10, { properties: props, expiresAt: 1_800_000_000_000, subscriptionIds: [1, 7] }),
        message(11, { qos: 2, retain: true }),
        message(12, { payload: Buffer.alloc(0) }),
      ].map(plain),
    );
    assert.deepEqual(
      (await store.fetch('dev-1', 10, 1)).map((m) => m.seq),
      [11],
    );
    assert.deepEqual(
      (await store.fetch('dev-1', 0, 10)).map((m) => m.seq),
      [10, 11, 12],
      'fetch removes nothing',
    );
    await store.ack('dev-1', [11, 10]);
    assert.deepEqual(
      (await store.fetch('dev-1', 0, 10)).map((m) => m.seq),
      [12],
    );
    await store.ack('dev-1', [999]);
    assert.equal((await store.load('dev-1'))?.lastSeq, 12);
    assert.deepEqual(await store.fetch('other', 0, 10), []);
  });

  t('a large seq (epoch microseconds) survives', async (store) => {
    const seq = 1_763_700_000_000_123;
    await store.enqueue('dev-1', [message(seq)]);
    assert.deepEqual(
      (await store.fetch('dev-1', seq - 1, 10)).map((m) => m.seq),
      [seq],
    );
    await store.ack('dev-1', [seq]);
    assert.deepEqual(await store.fetch('dev-1', 0, 10), []);
  });

  t(
    'list returns the saved sessions with their last seq; delete removes session and queue',
    async (store) => {
      if (store.list === undefined) assert.fail('list() is required for restart recovery');
      await store.save(session);
      await store.save({ ...session, clientId: 'dev-2', subscriptions: [] });
      await store.enqueue('dev-2', [message(20), message(21)]);
      const listed = (await store.list()).sort((a, b) => a.clientId.localeCompare(b.clientId));
      assert.deepEqual(
        listed.map((s) => [s.clientId, s.subscriptions.length, s.lastSeq ?? 0]),
        [
          ['dev-1', 2, 0],
          ['dev-2', 0, 21],
        ],
      );
      await store.delete('dev-2');
      assert.equal(await store.load('dev-2'), undefined);
      assert.deepEqual(await store.fetch('dev-2', 0, 10), []);
      assert.deepEqual(
        (await store.list()).map((s) => s.clientId),
        ['dev-1'],
      );
    },
  );

  t('what one store instance wrote, a reopened one reads', async (store, o) => {
    if (o.reopen === undefined) return;
    await store.save(session);
    await store.enqueue('dev-1', [message(30)]);
    const other = await o.reopen();
    assert.equal((await other.load('dev-1'))?.subscriptions.length, 2);
    assert.deepEqual(
      (await other.fetch('dev-1', 0, 10)).map((m) => m.seq),
      [30],
    );
    await other.close?.();
  });
}

export function retainedStoreContract(
  name: string,
  open: () => Promise<Opened<RetainedStore>>,
  opts: { skip?: string | false } = {},
): void {
  test(
    `${name}: set, replace, wildcard match with the $ rule, delete by empty payload`,
    {
      skip: opts.skip ?? false,
    },
    async () => {
      const { store, cleanup } = await open();
      try {
        const props = { contentType: 'text/plain', userProperties: { a: 'b' } };
        await store.set({ topic: 'a/b', payload: Buffer.from('1'), qos: 1 });
        await store.set({
          topic: 'a/b',
          payload: Buffer.from('2'),
          qos: 2,
          properties: props,
          expiresAt: 99,
        });
        await store.set({ topic: 'a/c/d', payload: Buffer.from('3'), qos: 0 });
        await store.set({ topic: '$SYS/x', payload: Buffer.from('4'), qos: 0 });
        await store.set({ topic: 'a%_\\/b', payload: Buffer.from('5'), qos: 0 });
        const topics = async (f: string) => (await store.match(f)).map((m) => m.topic).sort();
        assert.deepEqual(await topics('#'), ['a%_\\/b', 'a/b', 'a/c/d']);
        assert.deepEqual(await topics('a/+'), ['a/b']);
        assert.deepEqual(await topics('a/#'), ['a/b', 'a/c/d']);
        assert.deepEqual(await topics('+/+/d'), ['a/c/d']);
        assert.deepEqual(await topics('$SYS/#'), ['$SYS/x']);
        assert.deepEqual(await topics('a%_\\/b'), ['a%_\\/b']);
        assert.deepEqual(await topics('a_%\\/b'), []);
        const [ab] = await store.match('a/b');
        assert.equal(Buffer.from(ab!.payload).toString(), '2');
        assert.equal(ab!.qos, 2);
        assert.deepEqual(ab!.properties, props);
        assert.equal(ab!.expiresAt, 99);
        await store.set({ topic: 'a/b', payload: Buffer.alloc(0), qos: 0 });
        assert.deepEqual(await topics('a/#'), ['a/c/d']);
      } finally {
        await cleanup();
      }
    },
  );
}
