// Outbound QoS 1/2 messages in flight, by packet id. A Map churned by one set and one delete per
// message rehashes into a new table every few messages, and V8 keeps each obsolete table linked to
// the next (for live iterators) with its entries: until the next full GC, the dead tables kept the
// messages alive through every scavenge (~18 % of what the QoS 1 path allocated survived, 5-17 ms
// scavenges). Here a slot array indexed by the low bits of the packet id is written in place.

/** What the table keeps: anything with its packet id. */
export interface InflightEntry {
  packetId: number;
}

const FIRST_CAPACITY = 16;
/** Packet ids are 1..65535 [MQTT-2.3.1-1]: a table of this size never collides. */
const MAX_CAPACITY = 65_536;

export class InflightTable<E extends InflightEntry> {
  #slots: (E | undefined)[] | undefined = undefined;
  #mask = 0;
  /** Send order of each entry, so that resending keeps it [MQTT-4.4.0-1]. */
  #order: number[] | undefined = undefined;
  #sent = 0;
  #size = 0;

  get size(): number {
    return this.#size;
  }

  get(packetId: number): E | undefined {
    const slots = this.#slots;
    if (slots === undefined) return undefined;
    const e = slots[packetId & this.#mask];
    return e !== undefined && e.packetId === packetId ? e : undefined;
  }

  has(packetId: number): boolean {
    return this.get(packetId) !== undefined;
  }

  /** Adds an entry, or replaces the one with the same packet id. */
  set(packetId: number, e: E): void {
    if (e.packetId !== packetId) throw new Error('in-flight entry filed under another packet id');
    if (this.#slots === undefined) this.#grow(FIRST_CAPACITY);
    for (;;) {
      const i = packetId & this.#mask;
      const there = this.#slots![i];
      if (there === undefined || there.packetId === packetId) {
        if (there === undefined) this.#size++;
        this.#slots![i] = e;
        this.#order![i] = ++this.#sent;
        return;
      }
      // Another packet id on the same slot: only at less than MAX_CAPACITY, where ids cannot collide.
      this.#grow(this.#slots!.length * 2);
    }
  }

  delete(packetId: number): boolean {
    const slots = this.#slots;
    if (slots === undefined) return false;
    const i = packetId & this.#mask;
    const e = slots[i];
    if (e === undefined || e.packetId !== packetId) return false;
    slots[i] = undefined;
    this.#size--;
    return true;
  }

  /**
   * The first packet id from `start` on (1..65535, wrapping) that is not in flight and has a free
   * slot, so that `set` does not have to grow the table. The table grows first when half full.
   */
  allocate(start: number): number {
    if (this.#slots === undefined) this.#grow(FIRST_CAPACITY);
    else if (this.#size * 2 >= this.#slots.length && this.#slots.length < MAX_CAPACITY)
      this.#grow(this.#slots.length * 2);
    const slots = this.#slots!;
    const mask = this.#mask;
    let id = start;
    // 3.1.1 [MQTT-2.3.1-2], v5 [MQTT-2.2.1-4]: a packet id is not reused while its exchange is in flight.
    while (slots[id & mask] !== undefined) id = id === 65_535 ? 1 : id + 1;
    return id;
  }

  /** The entries in the order they were added. */
  values(): E[] {
    const slots = this.#slots;
    if (slots === undefined || this.#size === 0) return [];
    const order = this.#order!;
    const out: { e: E; n: number }[] = [];
    for (let i = 0; i < slots.length; i++) {
      const e = slots[i];
      if (e !== undefined) out.push({ e, n: order[i]! });
    }
    return out.sort((a, b) => a.n - b.n).map((x) => x.e);
  }

  #grow(capacity: number): void {
    const old = this.#slots;
    const oldOrder = this.#order;
    let cap = capacity;
    for (;;) {
      const slots = new Array<E | undefined>(cap).fill(undefined);
      const order = new Array<number>(cap).fill(0);
      const mask = cap - 1;
      let ok = true;
      if (old !== undefined) {
        for (let i = 0; i < old.length; i++) {
          const e = old[i];
          if (e === undefined) continue;
          const j = e.packetId & mask;
          if (slots[j] !== undefined) {
            ok = false;
            break;
          }
          slots[j] = e;
          order[j] = oldOrder![i]!;
        }
      }
      if (ok) {
        this.#slots = slots;
        this.#order = order;
        this.#mask = mask;
        return;
      }
      cap *= 2;
    }
  }
}
