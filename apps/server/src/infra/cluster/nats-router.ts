// The broker's ClusterRouter over NATS: nodes announce the topic filters they have subscribers for, and
// a node forwards a message only to the nodes whose filters match its topic. QoS 1/2 messages travel
// through JetStream, into a durable consumer per node, so they wait for a node that is down (where
// persistent sessions live) and are acknowledged only after that node has routed them, and stored them
// for its persistent sessions. QoS 0 goes over core NATS (never kept for offline sessions anyway).
//
// Subjects (under `prefix`, default `bulwark.mqtt`):
//   <prefix>.interest       {node, op: add|remove|snapshot|hello, filter?, filters?} interest changes
//   <prefix>.session        {node, clientId} a node took over a persistent session
//   <prefix>.live.<node>    QoS 0 messages for a node
//   <prefix>.node.<node>    QoS 1/2 messages for a node (JetStream stream `stream`)
import {
  AckPolicy,
  DeliverPolicy,
  RetentionPolicy,
  StorageType,
  connect,
  type ConsumerMessages,
  type JetStreamClient,
  type NatsConnection,
  type Subscription,
} from 'nats';
import type { ClusterRouter, MessageProperties, RoutedMessage } from '@bulwark/broker';
import type { Logger } from '../../kernel/index.ts';

export interface NatsRouterOptions {
  /** e.g. `nats://127.0.0.1:4222` (comma-separated for several servers). */
  url: string;
  /** This node's id (stable across restarts: its durable queue is named after it). */
  node: string;
  logger: Logger;
  /** Subject prefix; nodes of one cluster share it. Default `bulwark.mqtt`. */
  prefix?: string;
  /** JetStream stream name. Default `BULWARK_MQTT`. */
  stream?: string;
  /** How long QoS 1/2 messages wait for a node that does not come back. Default 24 h. */
  maxAgeMs?: number;
}

export interface NatsRouter extends ClusterRouter {
  /** Connects, joins the cluster's interest exchange and starts consuming this node's queue. */
  start(): Promise<void>;
  /** Messages sent to / received from other nodes, and other nodes currently known. */
  readonly stats: { forwarded: number; received: number; readonly nodes: number };
  close(): Promise<void>;
}

type InterestOp =
  | { node: string; op: 'add' | 'remove'; filter: string }
  | { node: string; op: 'snapshot'; filters: string[] }
  | { node: string; op: 'hello' };

interface WireHeader {
  t: string;
  q: 0 | 1 | 2;
  r?: 1;
  p?: Omit<MessageProperties, 'correlationData'> & { correlationData?: string };
  e?: number;
  o?: string;
}

/** header length (4 bytes) | JSON header | payload */
export function encodeRouted(m: RoutedMessage): Uint8Array {
  const h: WireHeader = { t: m.topic, q: m.qos };
  if (m.retain) h.r = 1;
  if (m.properties !== undefined) {
    const { correlationData, ...rest } = m.properties;
    h.p =
      correlationData === undefined
        ? rest
        : { ...rest, correlationData: Buffer.from(correlationData).toString('base64') };
  }
  if (m.expiresAt !== undefined) h.e = m.expiresAt;
  if (m.origin !== undefined) h.o = m.origin;
  const json = Buffer.from(JSON.stringify(h));
  const out = Buffer.allocUnsafe(4 + json.length + m.payload.length);
  out.writeUInt32BE(json.length, 0);
  json.copy(out, 4);
  Buffer.from(m.payload.buffer, m.payload.byteOffset, m.payload.byteLength).copy(out, 4 + json.length);
  return out;
}

export function decodeRouted(data: Uint8Array): RoutedMessage {
  const b = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const n = b.readUInt32BE(0);
  const h = JSON.parse(b.subarray(4, 4 + n).toString('utf8')) as WireHeader;
  const m: RoutedMessage = {
    topic: h.t,
    payload: Buffer.from(b.subarray(4 + n)),
    qos: h.q,
    retain: h.r === 1,
  };
  if (h.p !== undefined) {
    const { correlationData, ...rest } = h.p;
    m.properties =
      correlationData === undefined
        ? rest
        : { ...rest, correlationData: Buffer.from(correlationData, 'base64') };
  }
  if (h.e !== undefined) m.expiresAt = h.e;
  if (h.o !== undefined) m.origin = h.o;
  return m;
}

/** Topic filters of the other nodes, in a trie, answering "which nodes want this topic". */
class InterestTrie {
  readonly #root = new TrieNode();
  /** node -> its filters (as matched: `$share/{group}/` stripped) with reference counts. */
  readonly #byNode = new Map<string, Map<string, number>>();

  get nodes(): number {
    return this.#byNode.size;
  }

  add(node: string, raw: string): void {
    const filter = stripShare(raw);
    let mine = this.#byNode.get(node);
    if (mine === undefined) this.#byNode.set(node, (mine = new Map()));
    const n = mine.get(filter) ?? 0;
    mine.set(filter, n + 1);
    if (n === 0) this.#root.insert(filter.split('/'), 0, node);
  }

  remove(node: string, raw: string): void {
    const filter = stripShare(raw);
    const mine = this.#byNode.get(node);
    const n = mine?.get(filter) ?? 0;
    if (n === 0) return;
    if (n > 1) {
      mine!.set(filter, n - 1);
      return;
    }
    mine!.delete(filter);
    this.#root.delete(filter.split('/'), 0, node);
  }

  replace(node: string, filters: string[]): void {
    for (const f of [...(this.#byNode.get(node)?.keys() ?? [])]) {
      this.#byNode.get(node)!.set(f, 1);
      this.remove(node, f);
    }
    for (const f of filters) this.add(node, f);
  }

  match(topic: string): Set<string> {
    const out = new Set<string>();
    this.#root.match(topic.split('/'), 0, topic.startsWith('$'), out);
    return out;
  }
}

class TrieNode {
  readonly children = new Map<string, TrieNode>();
  /** Nodes whose filter ends here. */
  readonly here = new Set<string>();
  /** Nodes with a filter `.../#` at this level. */
  readonly rest = new Set<string>();

  insert(levels: string[], i: number, node: string): void {
    if (i === levels.length) {
      this.here.add(node);
      return;
    }
    if (levels[i] === '#') {
      this.rest.add(node);
      return;
    }
    let c = this.children.get(levels[i]!);
    if (c === undefined) this.children.set(levels[i]!, (c = new TrieNode()));
    c.insert(levels, i + 1, node);
  }

  delete(levels: string[], i: number, node: string): void {
    if (i === levels.length) {
      this.here.delete(node);
      return;
    }
    if (levels[i] === '#') {
      this.rest.delete(node);
      return;
    }
    const c = this.children.get(levels[i]!);
    if (c === undefined) return;
    c.delete(levels, i + 1, node);
    if (c.here.size === 0 && c.rest.size === 0 && c.children.size === 0) this.children.delete(levels[i]!);
  }

  match(levels: string[], i: number, dollar: boolean, out: Set<string>): void {
    // [MQTT-4.7.2-1] a filter starting with a wildcard does not match a topic starting with '$'.
    const wildOk = !(dollar && i === 0);
    // '#' also matches the parent level [MQTT-4.7.1-2].
    if (wildOk) for (const n of this.rest) out.add(n);
    if (i === levels.length) {
      for (const n of this.here) out.add(n);
      return;
    }
    this.children.get(levels[i]!)?.match(levels, i + 1, dollar, out);
    if (wildOk) this.children.get('+')?.match(levels, i + 1, dollar, out);
  }
}

function stripShare(raw: string): string {
  if (!raw.startsWith('$share/')) return raw;
  const i = raw.indexOf('/', 7);
  return i === -1 ? raw : raw.slice(i + 1);
}

export function createNatsRouter(opts: NatsRouterOptions): NatsRouter {
  const prefix = opts.prefix ?? 'bulwark.mqtt';
  const streamName = opts.stream ?? 'BULWARK_MQTT';
  const node = opts.node;
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(node))
    throw new TypeError(`invalid cluster node id ${JSON.stringify(node)}`);
  const log = opts.logger;
  const subjects = {
    interest: `${prefix}.interest`,
    session: `${prefix}.session`,
    live: (n: string) => `${prefix}.live.${n}`,
    queue: (n: string) => `${prefix}.node.${n}`,
  };
  const remote = new InterestTrie();
  /** This node's filters (the broker reference-counts: one subscribe per filter). */
  const local = new Set<string>();
  const stats = {
    forwarded: 0,
    received: 0,
    get nodes() {
      return remote.nodes;
    },
  };
  let deliver: (m: RoutedMessage) => void | Promise<unknown> = () => {};
  let sessionTaken: (clientId: string) => void = () => {};
  let nc: NatsConnection | undefined;
  let js: JetStreamClient | undefined;
  const subs: Subscription[] = [];
  let consumer: ConsumerMessages | undefined;
  const loops: Promise<void>[] = [];
  let closed = false;

  const announce = (op: InterestOp): void => {
    if (nc === undefined || closed) return; // start() sends a snapshot
    nc.publish(subjects.interest, JSON.stringify(op));
  };

  const onInterest = (op: InterestOp): void => {
    if (op.node === node) return;
    switch (op.op) {
      case 'add':
        remote.add(op.node, op.filter);
        return;
      case 'remove':
        remote.remove(op.node, op.filter);
        return;
      case 'snapshot':
        remote.replace(op.node, op.filters);
        return;
      case 'hello':
        // A node (re)joined: it learns everyone's interest from their snapshots.
        announce({ node, op: 'snapshot', filters: [...local] });
        return;
    }
  };

  const routeIn = async (m: RoutedMessage): Promise<void> => {
    stats.received++;
    await deliver(m);
  };

  const listen = (sub: Subscription, fn: (data: Uint8Array) => void | Promise<void>): void => {
    loops.push(
      (async () => {
        for await (const msg of sub) {
          try {
            await fn(msg.data);
          } catch (err) {
            log.error({ err: String(err), subject: msg.subject }, 'cluster message failed');
          }
        }
      })(),
    );
  };

  return {
    stats,

    attach(fn, events) {
      deliver = fn;
      if (events) sessionTaken = events.sessionTaken;
    },

    async start() {
      nc = await connect({ servers: opts.url.split(','), name: `bulwark-${node}`, maxReconnectAttempts: -1 });
      js = nc.jetstream();
      const jsm = await nc.jetstreamManager();
      const config = {
        name: streamName,
        subjects: [`${prefix}.node.*`],
        retention: RetentionPolicy.Limits,
        storage: StorageType.File,
        max_age: (opts.maxAgeMs ?? 86_400_000) * 1_000_000,
      };
      try {
        await jsm.streams.info(streamName);
        await jsm.streams.update(streamName, config);
      } catch {
        await jsm.streams.add(config);
      }
      const durable = `node-${node}`;
      try {
        await jsm.consumers.info(streamName, durable);
      } catch {
        await jsm.consumers.add(streamName, {
          durable_name: durable,
          filter_subject: subjects.queue(node),
          ack_policy: AckPolicy.Explicit,
          deliver_policy: DeliverPolicy.All,
          max_ack_pending: 10_000,
          ack_wait: 30_000_000_000,
        });
      }
      const interest = nc.subscribe(subjects.interest);
      subs.push(interest);
      listen(interest, (data) => onInterest(JSON.parse(Buffer.from(data).toString('utf8')) as InterestOp));
      const session = nc.subscribe(subjects.session);
      subs.push(session);
      listen(session, (data) => {
        const c = JSON.parse(Buffer.from(data).toString('utf8')) as { node: string; clientId: string };
        if (c.node !== node) sessionTaken(c.clientId);
      });
      const live = nc.subscribe(subjects.live(node));
      subs.push(live);
      listen(live, (data) => void routeIn(decodeRouted(data)));
      // Make sure our subscriptions are in place before asking the others for their interest.
      await nc.flush();
      nc.publish(subjects.interest, JSON.stringify({ node, op: 'hello' } satisfies InterestOp));
      nc.publish(subjects.interest, JSON.stringify({ node, op: 'snapshot', filters: [...local] }));
      // Queued QoS 1/2 messages for this node (also those sent while it was down): acknowledged once
      // the broker has routed them, and stored them for persistent sessions.
      const c = await js.consumers.get(streamName, durable);
      consumer = await c.consume({ max_messages: 1000 });
      const messages = consumer;
      loops.push(
        (async () => {
          for await (const m of messages) {
            try {
              await routeIn(decodeRouted(m.data));
              m.ack();
            } catch (err) {
              log.error({ err: String(err) }, 'queued cluster message failed; redelivered later');
              m.nak(1000);
            }
          }
        })(),
      );
      await nc.flush();
    },

    subscribe(filter) {
      local.add(filter);
      announce({ node, op: 'add', filter });
    },

    unsubscribe(filter) {
      local.delete(filter);
      announce({ node, op: 'remove', filter });
    },

    forward(m) {
      if (nc === undefined || closed) return undefined;
      const targets = remote.match(m.topic);
      if (targets.size === 0) return undefined;
      const data = encodeRouted(m);
      if (m.qos === 0) {
        for (const n of targets) {
          nc.publish(subjects.live(n), data);
          stats.forwarded++;
        }
        return undefined;
      }
      const acks: Promise<unknown>[] = [];
      for (const n of targets) {
        acks.push(js!.publish(subjects.queue(n), data));
        stats.forwarded++;
      }
      return Promise.all(acks).then(() => undefined);
    },

    claimSession(clientId) {
      if (nc === undefined || closed) return;
      nc.publish(subjects.session, JSON.stringify({ node, clientId }));
    },

    async close() {
      if (closed) return;
      closed = true;
      if (nc === undefined) return;
      consumer?.stop();
      for (const s of subs) s.unsubscribe();
      await nc.drain().catch(() => {});
      await Promise.allSettled(loops);
    },
  };
}
