// Event subscriptions for extensions and microservices. An event is offered to each subscription of
// its tenant whose event patterns (and telemetry filter) match, and only when the subscription's
// service account may read what the event is about (the same policy decision as the API). Matching
// events go to an outbox in the database; the worker delivers them signed (Standard Webhooks), retries
// with exponential backoff and jitter, and logs every attempt.
import { AppError, type Clock, type Ids, type Logger, type RoutePrincipal } from '../../kernel/index.ts';
import type { AuditEntry } from '../audit/index.ts';
import type { PolicyService, Principal } from '../policy/index.ts';
import {
  EVENT_TYPES,
  type DeliveryAttempt,
  type EventType,
  type OutboxItem,
  type PlatformEvent,
  type Subscription,
  type TelemetryFilter,
  type WebhookSender,
  type WebhookStore,
} from './model.ts';
import { newSecret, signedHeaders } from './sign.ts';

export interface WebhookOptions {
  /** Attempts before a message is given up (marked failed). */
  maxAttempts: number;
  /** First retry delay; doubles each attempt, with ±20% jitter, up to `maxDelayMs`. */
  baseDelayMs: number;
  maxDelayMs: number;
  timeoutMs: number;
  /** Allow http:// and loopback targets (tests and development only). */
  allowInsecureLoopback: boolean;
}

export const DEFAULT_WEBHOOK_OPTIONS: WebhookOptions = {
  maxAttempts: 8,
  baseDelayMs: 10_000,
  maxDelayMs: 3_600_000,
  timeoutMs: 10_000,
  allowInsecureLoopback: false,
};

/** What the webhooks module needs from iam (service accounts and the no-escalation rule). */
export interface WebhookIam {
  servicePrincipal(tenant: string, id: string): Promise<Principal | undefined>;
  requireCoversAccount(actor: RoutePrincipal, id: string, what: string): Promise<void>;
}

export interface WebhookDeps {
  store: WebhookStore;
  clock: Clock;
  ids: Ids;
  policy: PolicyService;
  iam: WebhookIam;
  sealer: { seal(p: Uint8Array): Promise<string>; open(s: string): Promise<Uint8Array> };
  sender: WebhookSender;
  logger: Logger;
  checkUrl(url: string, allowInsecureLoopback: boolean): URL;
  /** Uniform in [0, 1): jitter. */
  random?: () => number;
  options?: Partial<WebhookOptions>;
  record(entry: AuditEntry): Promise<void>;
}

export interface SubscriptionInput {
  serviceAccountId: string;
  url: string;
  events: string[];
  filter?: TelemetryFilter;
  description?: string;
}

export interface SubscriptionView {
  id: string;
  serviceAccountId: string;
  url: string;
  events: readonly string[];
  filter: TelemetryFilter;
  description: string | null;
  status: string;
  createdAt: string;
}

const glob = (pattern: string, value: string) =>
  pattern === '*' ||
  new RegExp(
    `^${pattern
      .split('*')
      .map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
      .join('.*')}$`,
  ).test(value);

/** Audit actions that are also events for subscribers. */
function eventOfAudit(e: AuditEntry): { type: EventType; kind: string; action: string } | undefined {
  if (e.outcome !== 'success' || !e.tenant || !e.target) return undefined;
  const a = e.action;
  const map: Record<string, EventType> = {
    'device.create': 'device.created',
    'device.update': 'device.updated',
    'device.move': 'device.updated',
    'device.disable': 'device.disabled',
    'device.enable': 'device.enabled',
    'device.delete': 'device.deleted',
    'cert.issue': 'certificate.issued',
    'est.enroll': 'certificate.issued',
    'est.reenroll': 'certificate.issued',
    'cert.revoke': 'certificate.revoked',
  };
  // posture.finding events come from the posture module itself (a finding is not an administrative action).
  const type =
    map[a] ??
    (a.startsWith('policy.')
      ? 'policy.changed'
      : a.startsWith('campaign.')
        ? 'campaign.progress'
        : undefined);
  if (!type) return undefined;
  const action = type.startsWith('device.')
    ? 'devices:read'
    : type.startsWith('certificate.')
      ? 'certs:read'
      : type === 'policy.changed'
        ? 'policies:read'
        : type === 'campaign.progress'
          ? 'campaigns:read'
          : 'devices:read';
  return { type, kind: e.target.type, action };
}

export type WebhookService = ReturnType<typeof createWebhookService>;

export function createWebhookService(deps: WebhookDeps) {
  const { store, clock, ids, policy, iam, sealer, sender, logger } = deps;
  const options: WebhookOptions = { ...DEFAULT_WEBHOOK_OPTIONS, ...deps.options };
  const random = deps.random ?? Math.random;

  // Subscriptions by tenant, in memory: telemetry events must not cost a query each.
  let byTenant = new Map<string, Subscription[]>();
  let loadedAt = -Infinity;
  const reload = async () => {
    const all = await store.listSubscriptions();
    const next = new Map<string, Subscription[]>();
    for (const s of all)
      if (s.status === 'active') (next.get(s.tenant) ?? next.set(s.tenant, []).get(s.tenant))?.push(s);
    byTenant = next;
    loadedAt = clock.now();
  };
  // Owners' principals, briefly cached: a role change reaches deliveries within seconds.
  const owners = new Map<string, { at: number; principal: Principal | undefined }>();
  const ownerOf = async (s: Subscription) => {
    const hit = owners.get(s.accountId);
    if (hit && clock.now() - hit.at < 5_000) return hit.principal;
    const principal = await iam.servicePrincipal(s.tenant, s.accountId);
    owners.set(s.accountId, { at: clock.now(), principal });
    return principal;
  };

  const view = (s: Subscription): SubscriptionView => ({
    id: s.id,
    serviceAccountId: s.accountId,
    url: s.url,
    events: s.events,
    filter: s.filter,
    description: s.description,
    status: s.status,
    createdAt: new Date(s.createdAt).toISOString(),
  });

  const getIn = async (tenant: string, id: string) => {
    const s = await store.getSubscription(id);
    if (!s || s.tenant !== tenant) throw new AppError('ERR_WEBHOOK_NOT_FOUND');
    return s;
  };

  const matches = (s: Subscription, e: PlatformEvent) => {
    if (!s.events.some((p) => glob(p, e.type))) return false;
    if (e.type === 'telemetry') {
      const device = String(e.data.deviceId ?? '');
      const stream = String(e.data.stream ?? '');
      if (s.filter.devices && !s.filter.devices.some((p) => glob(p, device))) return false;
      if (s.filter.streams && !s.filter.streams.includes(stream)) return false;
    }
    return true;
  };

  const delay = (attempts: number) => {
    const base = Math.min(options.baseDelayMs * 2 ** (attempts - 1), options.maxDelayMs);
    return Math.round(base * (0.8 + 0.4 * random()));
  };

  let draining: Promise<number> | undefined;
  /** One delivery pass at a time per process (the outbox claim also guards against other nodes). */
  const deliverOnce = (limit?: number) =>
    (draining ??= deliverDue(limit).finally(() => (draining = undefined)));
  const deliverDue = async (limit = 50): Promise<number> => {
    const now = clock.now();
    const items = await store.due(now, limit);
    let done = 0;
    for (const item of items) {
      if (!(await store.claim(item, now, options.timeoutMs * 2))) continue;
      const sub = await store.getSubscription(item.subscriptionId);
      if (!sub) {
        await store.markFailed(item.id, item.attempts, 'subscription deleted');
        continue;
      }
      const secret = Buffer.from(await sealer.open(sub.secretSealed)).toString('utf8');
      const ts = Math.floor(clock.now() / 1000);
      const attempt = item.attempts + 1;
      const started = Date.now();
      let status: number | null = null;
      let error: string | null = null;
      try {
        status = (
          await sender.send(
            sub.url,
            signedHeaders(secret, item.id, ts, item.payload),
            item.payload,
            options.timeoutMs,
          )
        ).status;
        if (status < 200 || status >= 300) error = `HTTP ${status}`;
      } catch (err) {
        error = (err instanceof Error ? `${err.name}: ${err.message}` : String(err)).slice(0, 300);
      }
      const log: DeliveryAttempt = {
        tenant: item.tenant,
        subscriptionId: sub.id,
        messageId: item.id,
        eventType: item.eventType,
        attempt,
        at: clock.now(),
        statusCode: status,
        ok: error === null,
        durationMs: Date.now() - started,
        error,
      };
      await store.logAttempt(log);
      if (error === null) await store.markDelivered(item.id, clock.now(), attempt);
      else if (attempt >= options.maxAttempts) {
        await store.markFailed(item.id, attempt, error);
        logger.warn({ subscription: sub.id, message: item.id, error }, 'webhook given up');
      } else await store.markRetry(item.id, attempt, clock.now() + delay(attempt), error);
      done++;
    }
    return done;
  };

  let timer: ReturnType<typeof setInterval> | undefined;

  return {
    options,
    async load() {
      await reload();
    },

    /** Offers an event to every matching subscription whose owner may read what it is about. */
    async publish(e: PlatformEvent): Promise<number> {
      if (clock.now() - loadedAt > 10_000) await reload(); // other nodes' subscriptions
      const subs = byTenant.get(e.tenant) ?? [];
      if (subs.length === 0) return 0;
      const items: OutboxItem[] = [];
      const now = clock.now();
      for (const s of subs) {
        if (!matches(s, e)) continue;
        const owner = await ownerOf(s);
        if (!owner) continue;
        if (e.type !== 'webhook.ping') {
          const d = policy.authorize(owner, e.action, e.resource, {
            ...(e.resourceFleet !== undefined ? { resourceFleet: e.resourceFleet } : {}),
          });
          if (!d.allowed) continue;
        }
        const id = `msg_${ids.uuid().replace(/-/g, '')}`;
        items.push({
          id,
          tenant: e.tenant,
          subscriptionId: s.id,
          eventType: e.type,
          payload: JSON.stringify({ type: e.type, timestamp: new Date(now).toISOString(), data: e.data }),
          attempts: 0,
          nextAttemptAt: now,
          status: 'pending',
          createdAt: now,
          lastError: null,
          deliveredAt: null,
        });
      }
      await store.enqueue(items);
      return items.length;
    },

    /** Administrative actions recorded in the audit log that subscribers may want to hear about. */
    fromAudit(entry: AuditEntry): PlatformEvent | undefined {
      const m = eventOfAudit(entry);
      if (!m || !entry.tenant || !entry.target) return undefined;
      const deviceId =
        m.kind === 'device'
          ? entry.target.id
          : typeof entry.details?.deviceId === 'string'
            ? entry.details.deviceId
            : undefined;
      return {
        type: m.type,
        tenant: entry.tenant,
        action: m.action,
        resource: `bulwark:${entry.tenant}:${m.kind}/${entry.target.id}`,
        data: {
          [`${m.kind}Id`]: entry.target.id,
          ...(deviceId !== undefined ? { deviceId } : {}),
          action: entry.action,
          actor: entry.actor,
          ...(entry.details ? { details: entry.details } : {}),
        },
      };
    },

    deliverDue: deliverOnce,

    /** Delivers in the background every `intervalMs` (the outbox survives restarts). */
    start(intervalMs = 1_000) {
      timer ??= setInterval(() => {
        void deliverDue().catch((err: unknown) =>
          logger.error({ err: String(err) }, 'webhook delivery failed'),
        );
      }, intervalMs);
      timer.unref();
    },
    stop() {
      if (timer) clearInterval(timer);
      timer = undefined;
    },

    async list(tenant: string) {
      return (await store.listSubscriptions(tenant)).map(view);
    },
    async get(tenant: string, id: string) {
      return view(await getIn(tenant, id));
    },

    /** Creates a subscription owned by a service account; the signing secret is shown once. */
    async create(
      actor: RoutePrincipal,
      input: SubscriptionInput,
    ): Promise<{ subscription: SubscriptionView; secret: string }> {
      deps.checkUrl(input.url, options.allowInsecureLoopback);
      if (input.events.length === 0) throw new AppError('ERR_WEBHOOK_EVENT', 'name at least one event type');
      for (const p of input.events)
        if (!EVENT_TYPES.some((t) => glob(p, t)))
          throw new AppError('ERR_WEBHOOK_EVENT', `no event type matches '${p}'`);
      const owner = await iam.servicePrincipal(actor.tenant, input.serviceAccountId);
      if (!owner) throw new AppError('ERR_WEBHOOK_OWNER');
      // Subscribing for an account is reading with its rights: you must hold them yourself.
      await iam.requireCoversAccount(actor, input.serviceAccountId, 'Subscribing as this service account');
      const secret = newSecret(Buffer.from(ids.token(24), 'base64url'));
      const s: Subscription = {
        id: ids.uuid(),
        tenant: actor.tenant,
        accountId: input.serviceAccountId,
        url: input.url,
        events: input.events,
        filter: input.filter ?? {},
        description: input.description ?? null,
        secretSealed: await sealer.seal(Buffer.from(secret, 'utf8')),
        status: 'active',
        createdAt: clock.now(),
        createdBy: actor.id,
      };
      await store.insertSubscription(s);
      await reload();
      await deps.record({
        tenant: actor.tenant,
        actor: { type: actor.type, id: actor.id },
        action: 'webhook.create',
        target: { type: 'webhook', id: s.id },
        outcome: 'success',
        details: { url: s.url, events: s.events, serviceAccount: s.accountId },
      });
      return { subscription: view(s), secret };
    },

    async remove(actor: RoutePrincipal, id: string) {
      const s = await getIn(actor.tenant, id);
      await store.deleteSubscription(s.id);
      await reload();
      await deps.record({
        tenant: actor.tenant,
        actor: { type: actor.type, id: actor.id },
        action: 'webhook.delete',
        target: { type: 'webhook', id: s.id },
        outcome: 'success',
      });
    },

    async deliveries(tenant: string, id: string, limit = 100) {
      const s = await getIn(tenant, id);
      return (await store.attempts(s.id, limit)).map((a) => ({
        messageId: a.messageId,
        eventType: a.eventType,
        attempt: a.attempt,
        at: new Date(a.at).toISOString(),
        statusCode: a.statusCode,
        ok: a.ok,
        durationMs: a.durationMs,
        error: a.error,
      }));
    },

    async ping(actor: RoutePrincipal, id: string) {
      const s = await getIn(actor.tenant, id);
      const now = clock.now();
      const item: OutboxItem = {
        id: `msg_${ids.uuid().replace(/-/g, '')}`,
        tenant: s.tenant,
        subscriptionId: s.id,
        eventType: 'webhook.ping',
        payload: JSON.stringify({
          type: 'webhook.ping',
          timestamp: new Date(now).toISOString(),
          data: { subscriptionId: s.id },
        }),
        attempts: 0,
        nextAttemptAt: now,
        status: 'pending',
        createdAt: now,
        lastError: null,
        deliveredAt: null,
      };
      await store.enqueue([item]);
      return { messageId: item.id };
    },
  };
}
