// The SQL SessionStore and RetainedStore meet the broker's store contract on SQLite and PostgreSQL.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { systemClock } from '../src/kernel/index.ts';
import { openDatabase } from '../src/infra/database/index.ts';
import { createSqlRetainedStore, createSqlSessionStore } from '../src/infra/mqtt-store/index.ts';
import { backends } from '../../../test/support/db.ts';
import { retainedStoreContract, sessionStoreContract } from '../../../packages/broker/test/store-contract.ts';

for (const backend of backends) {
  sessionStoreContract(
    `SQL SessionStore (${backend.name})`,
    async () => {
      const { db, url, schema, cleanup } = await backend.open();
      const store = createSqlSessionStore(db, { node: 'node-a', clock: systemClock });
      const opened: { db: typeof db; close(): Promise<void> }[] = [];
      return {
        store,
        async reopen() {
          const other = await openDatabase({ url, ...(schema ? { schema } : {}) });
          opened.push({ db: other, close: () => other.close() });
          return createSqlSessionStore(other, { node: 'node-a', clock: systemClock });
        },
        async cleanup() {
          await store.close?.();
          for (const o of opened) await o.close();
          await cleanup();
        },
      };
    },
    { skip: backend.skip },
  );
  retainedStoreContract(
    `SQL RetainedStore (${backend.name})`,
    async () => {
      const { db, cleanup } = await backend.open();
      return { store: createSqlRetainedStore(db, { clock: systemClock }), cleanup };
    },
    { skip: backend.skip },
  );
}

for (const backend of backends) {
  test(
    `SQL SessionStore (${backend.name}): list() returns the sessions this node saved last`,
    {
      skip: backend.skip,
    },
    async () => {
      const { db, cleanup } = await backend.open();
      try {
        const a = createSqlSessionStore(db, { node: 'node-a', clock: systemClock });
        const b = createSqlSessionStore(db, { node: 'node-b', clock: systemClock });
        const s = {
          clientId: 'roamer',
          expiryInterval: 60,
          subscriptions: [],
          inflight: [],
          awaitingRelease: [],
        };
        await a.save(s);
        assert.deepEqual(
          (await a.list!()).map((x) => x.clientId),
          ['roamer'],
        );
        assert.deepEqual(await b.list!(), []);
        // The client reconnected to node b: b holds the session now.
        await b.save(s);
        assert.deepEqual(await a.list!(), []);
        assert.deepEqual(
          (await b.list!()).map((x) => x.clientId),
          ['roamer'],
        );
      } finally {
        await cleanup();
      }
    },
  );
}
