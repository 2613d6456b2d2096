// Topic trie: one node per filter level, so matching a topic costs O(levels x wildcard branches),
// independent of the number of subscriptions.

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

export class SubscriptionTree<E extends TreeEntry> {
  readonly #root = new Node<E>(undefined, '');
  #size = 0;

  get size(): number {
    return this.#size;
  }

  /**
   * Adds or replaces the entry for (clientId, group, filter).
   * Returns the replaced entry, if any.
   */
  add(entry: E): E | undefined {
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

  /** Calls the visitor for every subscription whose filter matches the topic name. */
  match(topic: string, visitor: MatchVisitor<E>): void {
    const levels = topic.split('/');
    // [MQTT-4.7.2-1] wildcards at the first level do not match topics starting with '$'.
    this.#walk(this.#root, levels, 0, topic.charCodeAt(0) === 0x24, visitor);
  }

  #walk(node: Node<E>, levels: string[], i: number, dollar: boolean, visitor: MatchVisitor<E>): void {
    const children = node.children;
    if (i === levels.length) {
      emit(node, visitor);
      // [MQTT-4.7.1-2] 'sport/#' also matches 'sport'.
      const hash = children?.get('#');
      if (hash !== undefined) emit(hash, visitor);
      return;
    }
    if (children === undefined) return;
    if (!dollar || i > 0) {
      const hash = children.get('#');
      if (hash !== undefined) emit(hash, visitor);
      const plus = children.get('+');
      if (plus !== undefined) this.#walk(plus, levels, i + 1, dollar, visitor);
    }
    const exact = children.get(levels[i]!);
    if (exact !== undefined) this.#walk(exact, levels, i + 1, dollar, visitor);
  }
}

function emit<E extends TreeEntry>(node: Node<E>, visitor: MatchVisitor<E>): void {
  if (node.subs !== undefined) for (const e of node.subs.values()) visitor.entry(e);
  if (node.shared !== undefined) for (const g of node.shared.values()) visitor.group(g);
}
