// Topic names and filters are untrusted input: tables of valid and malformed values, and the
// subscription tree checked against the reference matcher on random filters and topics.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MemoryRetainedStore } from '../src/memory-retained-store.ts';
import { SubscriptionTree } from '../src/subscription-tree.ts';
import type { TreeEntry } from '../src/subscription-tree.ts';
import { isValidTopicFilter, isValidTopicName, parseSubscriptionFilter, topicMatches } from '../src/topic.ts';

const topicNames: [string, boolean, string][] = [
  ['a', true, 'one level'],
  ['a/b/c', true, 'three levels'],
  ['/a', true, 'leading slash: empty first level'],
  ['a/', true, 'trailing slash: empty last level'],
  ['a//b', true, 'empty middle level'],
  ['/', true, 'only a separator'],
  ['$SYS/x', true, '$ topic'],
  ['ünïcödé/日本', true, 'non-ASCII'],
  ['', false, '[MQTT-4.7.3-1] empty'],
  ['a/+', false, '[MQTT-3.3.2-2] single-level wildcard'],
  ['a/#', false, '[MQTT-3.3.2-2] multi-level wildcard'],
  ['a+b', false, 'wildcard inside a level'],
  ['#', false, 'bare #'],
  [Array(70).fill('x').join('/'), false, 'more levels than the limit'],
];

for (const [topic, valid, why] of topicNames) {
  test(`topic name ${JSON.stringify(topic.slice(0, 20))} is ${valid ? 'valid' : 'invalid'} (${why})`, () => {
    assert.equal(isValidTopicName(topic, 64), valid);
  });
}

const filters: [string, boolean, string][] = [
  ['#', true, 'everything'],
  ['+', true, 'one level'],
  ['a/+/c', true, 'middle wildcard'],
  ['a/#', true, 'trailing #'],
  ['+/+', true, 'two wildcards'],
  ['/+', true, 'empty first level then +'],
  ['a//b', true, 'empty level'],
  ['', false, '[MQTT-4.7.3-1] empty'],
  ['a/#/b', false, '[MQTT-4.7.1-2] # not last'],
  ['a#', false, '[MQTT-4.7.1-2] # not alone in its level'],
  ['#/a', false, '# first then more'],
  ['a+', false, '[MQTT-4.7.1-3] + not alone in its level'],
  ['+a/b', false, '+ followed by characters'],
  ['a/b+', false, '+ preceded by characters'],
];

for (const [filter, valid, why] of filters) {
  test(`topic filter ${JSON.stringify(filter)} is ${valid ? 'valid' : 'invalid'} (${why})`, () => {
    assert.equal(isValidTopicFilter(filter, 64), valid);
  });
}

const shared: [string, { filter: string; group: string | undefined } | undefined][] = [
  ['$share/g/a/b', { filter: 'a/b', group: 'g' }],
  ['$share/g/#', { filter: '#', group: 'g' }],
  ['$share/group-1/+/x', { filter: '+/x', group: 'group-1' }],
  ['$share//a', undefined], // [MQTT-4.8.2-1] empty share name
  ['$share/g', undefined], // [MQTT-4.8.2-2] no filter
  ['$share/g/', undefined], // empty filter
  ['$share/g+/a', undefined], // wildcard in share name
  ['$share/g/a/#/b', undefined], // invalid filter
  ['$shared/g/a', { filter: '$shared/g/a', group: undefined }], // not the share prefix
];

for (const [raw, expected] of shared) {
  test(`subscription filter ${JSON.stringify(raw)} parses to ${JSON.stringify(expected)}`, () => {
    assert.deepEqual(parseSubscriptionFilter(raw, 64), expected);
  });
}

const matches: [string, string, boolean][] = [
  ['a/b', 'a/b', true],
  ['a/b', 'a/c', false],
  ['a/+', 'a/b', true],
  ['a/+', 'a/b/c', false],
  ['a/+', 'a', false],
  ['a/+', 'a/', true],
  ['a/#', 'a', true], // [MQTT-4.7.1-2]
  ['a/#', 'a/b/c', true],
  ['#', 'a/b', true],
  ['#', '/a', true],
  ['+/+', '/a', true],
  ['+', '/a', false],
  ['#', '$SYS/a', false], // [MQTT-4.7.2-1]
  ['+/a', '$SYS/a', false],
  ['$SYS/#', '$SYS/a', true],
  ['$SYS/+', '$SYS/a', true],
  ['a/b/c', 'a/b', false],
  ['a/b', 'a/b/c', false],
  ['A/b', 'a/b', false], // case sensitive
];

for (const [filter, topic, expected] of matches) {
  test(`filter ${JSON.stringify(filter)} ${expected ? 'matches' : 'does not match'} topic ${JSON.stringify(topic)}`, () => {
    assert.equal(topicMatches(filter, topic), expected);
    const tree = new SubscriptionTree<TreeEntry>();
    tree.add({ clientId: 'c', filter, group: undefined });
    let hit = false;
    tree.match(topic, { entry: () => (hit = true), group: () => (hit = true) });
    assert.equal(hit, expected);
  });
}

/** Small deterministic PRNG so failures reproduce. */
function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

test('subscription tree agrees with the reference matcher on random filters and topics', () => {
  const rnd = prng(42);
  const words = ['a', 'b', 'c', '', '$SYS', 'x'];
  const pick = <T>(xs: T[]): T => xs[Math.floor(rnd() * xs.length)]!;
  const tree = new SubscriptionTree<TreeEntry>();
  const filterList: string[] = [];
  for (let i = 0; i < 300; i++) {
    const n = 1 + Math.floor(rnd() * 4);
    const levels: string[] = [];
    for (let k = 0; k < n; k++) levels.push(pick([...words, '+', '+']));
    if (rnd() < 0.3) levels.push('#');
    const f = levels.join('/');
    if (!isValidTopicFilter(f, 64)) continue;
    filterList.push(f);
    tree.add({ clientId: `c${i}`, filter: f, group: undefined });
  }
  for (let i = 0; i < 500; i++) {
    const n = 1 + Math.floor(rnd() * 5);
    const levels: string[] = [];
    for (let k = 0; k < n; k++) levels.push(pick(words));
    const topic = levels.join('/');
    const got = new Set<string>();
    tree.match(topic, { entry: (e) => got.add(e.filter), group: () => {} });
    const expected = new Set(filterList.filter((f) => topicMatches(f, topic)));
    assert.deepEqual([...got].sort(), [...expected].sort(), `topic ${JSON.stringify(topic)}`);
  }
});

test('subscription tree: cached matches follow every subscribe, replace and unsubscribe (random churn)', () => {
  const rnd = prng(7);
  const words = ['a', 'b', 'c', '$SYS'];
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
  const randomTopic = (): string => {
    const n = 1 + Math.floor(rnd() * 3);
    return Array.from({ length: n }, () => pick(words)).join('/');
  };
  // A small cache, so that it also starts over while the tree changes.
  const tree = new SubscriptionTree<TreeEntry & { qos: number }>(8);
  const live = new Map<
    string,
    { clientId: string; filter: string; group: string | undefined; qos: number }
  >();
  const key = (clientId: string, filter: string, group: string | undefined) =>
    `${clientId} ${group} ${filter}`;
  for (let step = 0; step < 3000; step++) {
    const r = rnd();
    if (r < 0.15) {
      const filter = rnd() < 0.5 ? randomTopic() : pick(['#', 'a/+', '+/b', 'a/#', '$SYS/#', '+']);
      const clientId = pick(['c1', 'c2', 'c3']);
      const group = rnd() < 0.2 ? 'g' : undefined;
      const e = { clientId, filter, group, qos: Math.floor(rnd() * 3) };
      tree.add(e);
      live.set(key(clientId, filter, group), e);
    } else if (r < 0.25 && live.size > 0) {
      const e = pick([...live.values()]);
      assert.equal(tree.remove(e.clientId, e.filter, e.group), true);
      live.delete(key(e.clientId, e.filter, e.group));
    } else {
      const topic = randomTopic();
      const got: string[] = [];
      tree.match(topic, {
        entry: (e) => got.push(`${key(e.clientId, e.filter, e.group)} q${e.qos}`),
        group: (g) => {
          for (const m of g.members) got.push(`${key(m.clientId, m.filter, m.group)} q${m.qos}`);
        },
      });
      const expected = [...live.values()]
        .filter((e) => topicMatches(e.filter, topic))
        .map((e) => `${key(e.clientId, e.filter, e.group)} q${e.qos}`);
      assert.deepEqual(got.sort(), expected.sort(), `step ${step}, topic ${JSON.stringify(topic)}`);
    }
  }
});

test('subscription tree: long topic names are matched without being cached', () => {
  const tree = new SubscriptionTree<TreeEntry>(4);
  const long = `a/${'x'.repeat(2000)}`;
  tree.add({ clientId: 'c', filter: 'a/+', group: undefined });
  let hits = 0;
  for (let i = 0; i < 3; i++) tree.match(long, { entry: () => hits++, group: () => {} });
  assert.equal(hits, 3);
  assert.equal(tree.remove('c', 'a/+', undefined), true);
  tree.match(long, { entry: () => hits++, group: () => {} });
  assert.equal(hits, 3);
});

test('subscription tree prunes empty nodes and counts entries', () => {
  const tree = new SubscriptionTree<TreeEntry>();
  tree.add({ clientId: 'a', filter: 'x/y/z', group: undefined });
  tree.add({ clientId: 'b', filter: 'x/y/z', group: undefined });
  tree.add({ clientId: 'a', filter: 'x/y/z', group: undefined }); // replace
  tree.add({ clientId: 'a', filter: 'x/+', group: 'g' });
  assert.equal(tree.size, 3);
  assert.equal(tree.remove('a', 'x/y/z', undefined), true);
  assert.equal(tree.remove('a', 'x/y/z', undefined), false);
  assert.equal(tree.remove('b', 'x/y/z', undefined), true);
  assert.equal(tree.remove('a', 'x/+', 'g'), true);
  assert.equal(tree.size, 0);
  let hits = 0;
  tree.match('x/y/z', { entry: () => hits++, group: () => hits++ });
  assert.equal(hits, 0);
});

test('memory retained store: wildcard match, $ rule, deletion by empty payload', async () => {
  const store = new MemoryRetainedStore();
  for (const topic of ['a', 'a/b', 'a/b/c', 'x/b', '$SYS/up']) {
    await store.set({ topic, payload: Buffer.from(topic), qos: 0 });
  }
  const topics = async (f: string): Promise<string[]> => (await store.match(f)).map((m) => m.topic).sort();
  assert.deepEqual(await topics('#'), ['a', 'a/b', 'a/b/c', 'x/b']);
  assert.deepEqual(await topics('a/#'), ['a', 'a/b', 'a/b/c']);
  assert.deepEqual(await topics('+/b'), ['a/b', 'x/b']);
  assert.deepEqual(await topics('+/+'), ['a/b', 'x/b']);
  assert.deepEqual(await topics('$SYS/#'), ['$SYS/up']);
  assert.deepEqual(await topics('a/b'), ['a/b']);
  await store.set({ topic: 'a/b', payload: Buffer.alloc(0), qos: 0 });
  assert.deepEqual(await topics('a/#'), ['a', 'a/b/c']);
  assert.equal(store.size, 4);
});
