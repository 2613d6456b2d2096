// The broker's RetainedStore on the platform database: shared by every node of a cluster.
import { topicMatches } from '@bulwark/broker';
import type { RetainedMessage, RetainedStore } from '@bulwark/broker';
import type { Clock, Db } from '../../kernel/index.ts';
import { propertiesFromJson, propertiesToJson } from './sql-session-store.ts';

interface Row {
  topic: string;
  payload: Uint8Array;
  qos: number;
  properties: string | null;
  expires_at: number | null;
}

function fromRow(r: Row): RetainedMessage {
  const m: RetainedMessage = {
    topic: r.topic,
    payload: Buffer.from(r.payload),
    qos: Number(r.qos) as RetainedMessage['qos'],
  };
  const p = propertiesFromJson(r.properties);
  if (p !== undefined) m.properties = p;
  if (r.expires_at !== null) m.expiresAt = Number(r.expires_at);
  return m;
}

const COLUMNS = 'topic, payload, qos, properties, expires_at';

export function createSqlRetainedStore(db: Db, opts: { clock: Clock }): RetainedStore {
  return {
    async set(m) {
      // [MQTT-3.3.1-10] (v5 [MQTT-3.3.1-6]) an empty payload removes the retained message.
      if (m.payload.length === 0) {
        await db.run('DELETE FROM mqtt_retained WHERE topic = ?', [m.topic]);
        return;
      }
      await db.run(
        `INSERT INTO mqtt_retained (topic, payload, qos, properties, expires_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT (topic) DO UPDATE SET payload = excluded.payload, qos = excluded.qos,
           properties = excluded.properties, expires_at = excluded.expires_at, updated_at = excluded.updated_at`,
        [m.topic, m.payload, m.qos, propertiesToJson(m.properties), m.expiresAt ?? null, opts.clock.now()],
      );
    },

    async match(filter) {
      const wild = filter.search(/[+#]/);
      if (wild === -1) {
        const r = await db.get<Row>(`SELECT ${COLUMNS} FROM mqtt_retained WHERE topic = ?`, [filter]);
        return r === undefined ? [] : [fromRow(r)];
      }
      // Narrow by the literal prefix before the first wildcard (no LIKE: topics may contain % and _),
      // then match exactly, $-rule included.
      const prefix = filter.slice(0, wild);
      const rows =
        prefix === ''
          ? await db.all<Row>(`SELECT ${COLUMNS} FROM mqtt_retained`)
          : await db.all<Row>(`SELECT ${COLUMNS} FROM mqtt_retained WHERE substr(topic, 1, ?) = ?`, [
              [...prefix].length,
              prefix,
            ]);
      return rows.filter((r) => topicMatches(filter, r.topic)).map(fromRow);
    },
  };
}
