// Topic trie: one node per filter level, so matching a topic costs O(levels x wildcard branches),
// independent of the number of subscriptions. Results are cached per topic name: a device publishes
// to the same few topics over and over.

export interface TreeEntry {
  /** Key of the subscriber within one filter (the client id). */
  readonly clientId: string;
  /** Matched filter (the part after `$share/{group}/`). */
  readonly filter: string;
  /** Share name, undefined for ordinary subscriptions. */
  readonly group: string | undefined;
}

export interface SharedGroup<E extends TreeEntry> {
  members: E[];
  /** Round-robin cursor. */
  next: number;
}

class Node<E extends TreeEntry> {
  children: Map<string, Node<E>> | undefined = undefined;
  subs: Map<string, E> | undefined = undefined;
  shared: Map<string, SharedGroup<E>> | undefined = undefined;
  readonly parent: Node<E> | undefined;
  readonly level: string;

  constructor(parent: Node<E> | undefined, level: string) {
    this.parent = parent;
    this.level = level;
  }

  isEmpty(): boolean {
    return this.children === undefined && this.subs === undefined && this.shared === undefined;
  }
}

export interface MatchVisitor<E extends TreeEntry> {
  /** An ordinary subscription matched. */
  entry(e: E): void;
  /** A shared subscription group matched; the visitor picks the member. */
  group(g: SharedGroup<E>): void;
}

/** What a topic matched: ordinary entries and shared groups, in the order the walk found them. */
interface Matched<E extends TreeEntry> {
  entries: E[];
  groups: SharedGroup<E>[];
}

/** Topics whose matches are cached; past this the cache starts over. */
const MATCH_CACHE_SIZE = 4096;
/** Longer topic names are matched every time, so the cache stays small whatever clients publish. */
const MATCH_CACHE_TOPIC_LENGTH = 512;
const NOTHING: Matched<never> = Object.freeze({
  entries: Object.freeze([]) as unknown as never[],
  groups: Object.freeze([]) as unknown as SharedGroup<never>[],
});

export class SubscriptionTree<E extends TreeEntry> {
  readonly #root = new Node<E>(undefined, '');
  #size = 0;
  readonly #cache = new Map<string, Matched<E>>();
  readonly #cacheLimit: number;

  constructor(cacheSize = MATCH_CACHE_SIZE) {
    this.#cacheLimit = cacheSize;
  }

  get size(): number {
    return this.#size;
  }

  /**
   * Adds or replaces the entry for (clientId, group, filter).
   * Returns the replaced entry, if any.
   */
  add(entry: E): E | undefined {
    this.#invalidate(entry.filter);
    let node = this.#root;
    for (const level of entry.filter.split('/')) {
      node.children ??= new Map();
      let child = node.children.get(level);
      if (child === undefined) {
        child = new Node(node, level);
        node.children.set(level, child);
      }
      node = child;
    }
    if (entry.group === undefined) {
      node.subs ??= new Map();
      const previous = node.subs.get(entry.clientId);
      node.subs.set(entry.clientId, entry);
      if (previous === undefined) this.#size++;
      return previous;
    }
    node.shared ??= new Map();
    let g = node.shared.get(entry.group);
    if (g === undefined) {
      g = { members: [], next: 0 };
      node.shared.set(entry.group, g);
    }
    const i = g.members.findIndex((m) => m.clientId === entry.clientId);
    if (i >= 0) {
      const previous = g.members[i];
      g.members[i] = entry;
      return previous;
    }
    g.members.push(entry);
    this.#size++;
    return undefined;
  }

  /** Removes the entry for (clientId, group, filter); returns whether one existed. */
  remove(clientId: string, filter: string, group: string | undefined): boolean {
    let node: Node<E> | undefined = this.#root;
    for (const level of filter.split('/')) {
      node = node.children?.get(level);
      if (node === undefined) return false;
    }
    let removed = false;
    if (group === undefined) {
      if (node.subs?.delete(clientId)) {
        removed = true;
        if (node.subs.size === 0) node.subs = undefined;
      }
    } else {
      const g = node.shared?.get(group);
      if (g) {
        const i = g.members.findIndex((m) => m.clientId === clientId);
        if (i >= 0) {
          g.members.splice(i, 1);
          removed = true;
          if (g.members.length === 0) {
            node.shared!.delete(group);
            if (node.shared!.size === 0) node.shared = undefined;
          }
        }
      }
    }
    if (!removed) return false;
    this.#invalidate(filter);
    this.#size--;
    // Prune empty nodes so the tree does not grow with churn.
    while (node.parent !== undefined && node.isEmpty()) {
      const parent: Node<E> = node.parent;
      parent.children!.delete(node.level);
      if (parent.children!.size === 0) parent.children = undefined;
      node = parent;
    }
    return true;
  }

  /**
   * Cached matches that a change to `filter` can affect: a filter without wildcards matches only the
   * topic spelled the same; any other clears the cache.
   */
  #invalidate(filter: string): void {
    const cache = this.#cache;
    if (cache.size === 0) return;
    if (filter.includes('+') || filter.includes('#')) cache.clear();
    else cache.delete(filter);
  }

  /** Calls the visitor for every subscription whose filter matches the topic name. */
  match(topic: string, visitor: MatchVisitor<E>): void {
    let m = this.#cache.get(topic);
    if (m === undefined) {
      m = { entries: [], groups: [] };
      const levels = topic.split('/');
      // [MQTT-4.7.2-1] wildcards at the first level do not match topics starting with '$'.
      walk(this.#root, levels, 0, topic.charCodeAt(0) === 0x24, m);
      if (m.entries.length === 0 && m.groups.length === 0) m = NOTHING as Matched<E>;
      if (topic.length <= MATCH_CACHE_TOPIC_LENGTH) {
        if (this.#cache.size >= this.#cacheLimit) this.#cache.clear();
        this.#cache.set(topic, m);
      }
    }
    const entries = m.entries;
    for (let i = 0; i < entries.length; i++) visitor.entry(entries[i]!);
    const groups = m.groups;
    for (let i = 0; i < groups.length; i++) visitor.group(groups[i]!);
  }
}

function walk<E extends TreeEntry>(
  node: Node<E>,
  levels: string[],
  i: number,
  dollar: boolean,
  out: Matched<E>,
): void {
  const children = node.children;
  if (i === levels.length) {
    collect(node, out);
    // [MQTT-4.7.1-2] 'sport/#' also matches 'sport'.
    const hash = children?.get('#');
    if (hash !== undefined) collect(hash, out);
    return;
  }
  if (children === undefined) return;
  if (!dollar || i > 0) {
    const hash = children.get('#');
    if (hash !== undefined) collect(hash, out);
    const plus = children.get('+');
    if (plus !== undefined) walk(plus, levels, i + 1, dollar, out);
  }
  const exact = children.get(levels[i]!);
  if (exact !== undefined) walk(exact, levels, i + 1, dollar, out);
}

function collect<E extends TreeEntry>(node: Node<E>, out: Matched<E>): void {
  if (node.subs !== undefined) for (const e of node.subs.values()) out.entries.push(e);
  if (node.shared !== undefined) for (const g of node.shared.values()) out.groups.push(g);
}
