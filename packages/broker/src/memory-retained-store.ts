import type { RetainedMessage, RetainedStore } from './types.ts';

interface Node {
  children: Map<string, Node> | undefined;
  message: RetainedMessage | undefined;
}

function newNode(): Node {
  return { children: undefined, message: undefined };
}

/** In-memory RetainedStore: a topic trie, so a wildcard subscribe does not scan every retained topic. */
export class MemoryRetainedStore implements RetainedStore {
  readonly #root: Node = newNode();
  #count = 0;

  get size(): number {
    return this.#count;
  }

  async set(message: RetainedMessage): Promise<void> {
    const levels = message.topic.split('/');
    if (message.payload.length === 0) {
      // [MQTT-3.3.1-10] [MQTT-3.3.1-11] a zero-byte retained payload removes the retained message.
      this.#remove(levels);
      return;
    }
    let node = this.#root;
    for (const level of levels) {
      node.children ??= new Map();
      let child = node.children.get(level);
      if (child === undefined) {
        child = newNode();
        node.children.set(level, child);
      }
      node = child;
    }
    if (node.message === undefined) this.#count++;
    node.message = message;
  }

  #remove(levels: string[]): void {
    const path: Node[] = [this.#root];
    let node = this.#root;
    for (const level of levels) {
      const child = node.children?.get(level);
      if (child === undefined) return;
      path.push(child);
      node = child;
    }
    if (node.message === undefined) return;
    node.message = undefined;
    this.#count--;
    for (let i = path.length - 1; i > 0; i--) {
      const n = path[i]!;
      if (n.message !== undefined || n.children !== undefined) break;
      const parent = path[i - 1]!;
      parent.children!.delete(levels[i - 1]!);
      if (parent.children!.size === 0) parent.children = undefined;
    }
  }

  async match(filter: string): Promise<RetainedMessage[]> {
    const out: RetainedMessage[] = [];
    collect(this.#root, filter.split('/'), 0, out);
    return out;
  }
}

function collect(node: Node, levels: string[], i: number, out: RetainedMessage[]): void {
  if (i === levels.length) {
    if (node.message !== undefined) out.push(node.message);
    return;
  }
  const level = levels[i]!;
  if (level === '#') {
    // [MQTT-4.7.1-2] '#' matches the parent level too.
    if (node.message !== undefined && i > 0) out.push(node.message);
    all(node, i === 0, out);
    return;
  }
  if (node.children === undefined) return;
  if (level === '+') {
    for (const [name, child] of node.children) {
      // [MQTT-4.7.2-1] a leading wildcard does not match '$' topics.
      if (i === 0 && name.startsWith('$')) continue;
      collect(child, levels, i + 1, out);
    }
    return;
  }
  const child = node.children.get(level);
  if (child !== undefined) collect(child, levels, i + 1, out);
}

function all(node: Node, top: boolean, out: RetainedMessage[]): void {
  if (node.children === undefined) return;
  for (const [name, child] of node.children) {
    if (top && name.startsWith('$')) continue;
    if (child.message !== undefined) out.push(child.message);
    all(child, false, out);
  }
}
