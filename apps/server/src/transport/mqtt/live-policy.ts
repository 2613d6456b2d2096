// Live sessions follow policy changes. A change that concerns many sessions (a tenant-wide policy
// edit reaches every connected device) must not stall the event loop by recompiling them all at once,
// yet the next message of every one of them must be decided by the new policy. So a change only marks
// the sessions it concerns stale, which costs a few hundred nanoseconds each; a stale session is
// recompiled when it is next used (the next publish, subscribe or delivery), and a background sweep
// recompiles the idle ones in slices of a few milliseconds, re-checks their subscriptions and removes
// those the new policy no longer allows. Placement changes (device moved, groups, attributes) concern
// few sessions and need a lookup, so those sessions are refreshed at once.
import type {
  AuthorizeContext,
  CompiledPolicy,
  PolicyChange,
  PolicyService,
  Principal,
} from '../../modules/policy/index.ts';
import { resourceName } from '../../modules/policy/index.ts';

export interface LiveSession {
  readonly tenant: string;
  readonly deviceId: string;
  readonly context: AuthorizeContext;
  /** The device as the policy engine saw it at the last compile (fleet, groups, attributes). */
  subject: Principal;
  /** Compiled for `subject`; out of date while `stale`. Read it through `LivePolicies.current()`. */
  policy: CompiledPolicy;
  stale: boolean;
  /** Bumped by every placement change, so a slow lookup never overwrites a newer one. */
  placementGeneration: number;
}

export interface LivePoliciesDeps<S extends LiveSession> {
  readonly policy: Pick<PolicyService, 'compileFor' | 'affects'>;
  /** The device's current placement; undefined when it no longer exists. */
  placement(tenant: string, deviceId: string): Promise<Principal | undefined>;
  /** The session's current subscriptions (topic filters, as subscribed). */
  subscriptions(session: S): readonly string[];
  /** Removes subscriptions the policy no longer allows. */
  unsubscribe(session: S, filters: readonly string[], reason: string): void;
  /** The policy no longer allows the session at all. */
  revoke(session: S, reason: string): void;
  /** A refresh failed: the session must not keep its old policy (fail closed). */
  failed(session: S, err: unknown): void;
  /** Longest slice of sweep work per event-loop turn, ms (default 5). */
  readonly sliceMs?: number;
}

export interface LivePolicies<S extends LiveSession> {
  add(session: S): void;
  delete(session: S): void;
  /** The session's policy, recompiled first if a change made it stale. */
  current(session: S): CompiledPolicy;
  /** Applies a change: marks the sessions it concerns; returns how many. */
  apply(change: PolicyChange): number;
  /** Resolves once every marked session has been recompiled and its subscriptions re-checked. */
  settled(): Promise<void>;
  readonly size: number;
  /** Sessions waiting for the sweep. */
  readonly pending: number;
}

export function createLivePolicies<S extends LiveSession>(deps: LivePoliciesDeps<S>): LivePolicies<S> {
  const sliceMs = deps.sliceMs ?? 5;
  const sessions = new Set<S>();
  // Insertion-ordered: the sweep takes the oldest first; a session marked twice is swept once.
  const queue = new Map<S, string>();
  let sweeping = false;
  let lookups = 0; // placement refreshes in flight
  let waiters: (() => void)[] = [];

  const recompile = (s: S) => {
    s.policy = deps.policy.compileFor(s.subject, { context: s.context });
    s.stale = false;
  };

  /**
   * Recompiles if needed, then checks the connection and the subscriptions against the new policy.
   * These few checks walk the statements (`decide`) rather than build the per-action tries that
   * `allows` builds on first use: the session builds those when it next sends or receives.
   */
  const refresh = (s: S, reason: string) => {
    if (s.stale) recompile(s);
    if (!s.policy.decide('mqtt:connect', resourceName(s.tenant, 'client', s.deviceId)).allowed) {
      sessions.delete(s);
      deps.revoke(s, `policy no longer allows the session (${reason})`);
      return;
    }
    const lost = deps
      .subscriptions(s)
      .filter((f) => !s.policy.decide('mqtt:subscribe', resourceName(s.tenant, 'topic', f)).allowed);
    if (lost.length > 0) deps.unsubscribe(s, lost, reason);
  };

  const settle = () => {
    if (sweeping || lookups > 0) return;
    const w = waiters;
    waiters = [];
    for (const resolve of w) resolve();
  };

  // One slice of work; the rest on later turns of the event loop.
  const sweep = () => {
    const end = performance.now() + sliceMs;
    for (const [s, reason] of queue) {
      queue.delete(s);
      if (!sessions.has(s)) continue;
      try {
        refresh(s, reason);
      } catch (err) {
        sessions.delete(s);
        deps.failed(s, err);
      }
      if (performance.now() >= end) break;
    }
    if (queue.size === 0) {
      sweeping = false;
      settle();
    } else if (!scheduled) {
      scheduled = true;
      setImmediate(next);
    }
  };
  let scheduled = false;
  const next = () => {
    scheduled = false;
    if (queue.size > 0) sweep();
    else {
      sweeping = false;
      settle();
    }
  };

  const enqueue = (s: S, reason: string) => {
    queue.set(s, reason);
    sweeping = true;
  };

  const replace = async (s: S, change: PolicyChange) => {
    const generation = ++s.placementGeneration;
    lookups++;
    let subject: Principal | undefined;
    try {
      subject = await deps.placement(s.tenant, s.deviceId);
    } finally {
      lookups--;
    }
    // Deleted: the device event drops the session. A newer placement change supersedes this one.
    if (subject && generation === s.placementGeneration && sessions.has(s)) {
      s.subject = subject;
      s.stale = true;
      refresh(s, change.reason);
    }
    settle();
  };

  return {
    add(s) {
      sessions.add(s);
    },
    delete(s) {
      sessions.delete(s);
      queue.delete(s);
    },
    current(s) {
      if (s.stale) recompile(s);
      return s.policy;
    },
    apply(change) {
      let marked = 0;
      for (const s of sessions) {
        if (!deps.policy.affects(change, s.subject)) continue;
        marked++;
        if (change.placementChanged) {
          replace(s, change).catch((err: unknown) => {
            sessions.delete(s);
            queue.delete(s);
            deps.failed(s, err);
            settle();
          });
        } else {
          s.stale = true;
          enqueue(s, change.reason);
        }
      }
      // A change that concerns a few sessions is applied in full before this returns.
      if (queue.size > 0) sweep();
      return marked;
    },
    settled() {
      return !sweeping && lookups === 0 ? Promise.resolve() : new Promise((r) => waiters.push(r));
    },
    get size() {
      return sessions.size;
    },
    get pending() {
      return queue.size;
    },
  };
}
