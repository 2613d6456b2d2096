// Group commit: messages wait at most `maxDelayMs` (or until `maxSize` are queued), then the whole batch
// is written in one transaction and every waiting caller is resolved, or rejected, together. Callers
// acknowledge to the device only after their promise resolves, so an acknowledged message is committed.

export interface BatcherOptions<T> {
  write(items: readonly T[]): Promise<void>;
  maxSize: number;
  maxDelayMs: number;
  /** Items queued or being written; past it `add` rejects at once. */
  maxPending: number;
  onOverflow: () => Error;
}

export interface Batcher<T> {
  add(item: T): Promise<void>;
  readonly pending: number;
  /** Writes what is queued and waits for every write in flight. */
  flush(): Promise<void>;
}

interface Waiter<T> {
  item: T;
  resolve: () => void;
  reject: (err: unknown) => void;
}

export function createBatcher<T>(opts: BatcherOptions<T>): Batcher<T> {
  const queue: Waiter<T>[] = [];
  let inFlight = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let writing: Promise<void> = Promise.resolve();

  const cut = (): Promise<void> => {
    if (timer) {
      clearTimeout(timer);
      timer = undefined;
    }
    if (queue.length === 0) return writing;
    const batch = queue.splice(0, opts.maxSize);
    inFlight += batch.length;
    // Batches are written one after another so commits, and therefore acknowledgements, keep arrival order.
    writing = writing.then(async () => {
      try {
        await opts.write(batch.map((w) => w.item));
        for (const w of batch) w.resolve();
      } catch (err) {
        for (const w of batch) w.reject(err);
      } finally {
        inFlight -= batch.length;
      }
    });
    if (queue.length > 0) return cut();
    return writing;
  };

  return {
    get pending() {
      return queue.length + inFlight;
    },
    add(item) {
      if (queue.length + inFlight >= opts.maxPending) return Promise.reject(opts.onOverflow());
      return new Promise<void>((resolve, reject) => {
        queue.push({ item, resolve, reject });
        if (queue.length >= opts.maxSize) void cut();
        else if (!timer) timer = setTimeout(() => void cut(), opts.maxDelayMs);
      });
    },
    async flush() {
      await cut();
      await writing;
    },
  };
}
