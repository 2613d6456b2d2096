/** Event types a subscription may ask for (`*` patterns allowed, e.g. `device.*`). */
export const EVENT_TYPES = [
  'device.created',
  'device.updated',
  'device.disabled',
  'device.enabled',
  'device.deleted',
  'device.connected',
  'device.disconnected',
  'telemetry',
  'certificate.issued',
  'certificate.revoked',
  'policy.changed',
  'campaign.progress',
  'posture.finding',
  'webhook.ping',
] as const;

export type EventType = (typeof EVENT_TYPES)[number];

/** Something that happened, with what a subscriber must be allowed to read to be told about it. */
export interface PlatformEvent {
  readonly type: EventType;
  readonly tenant: string;
  readonly data: Readonly<Record<string, unknown>>;
  /** Policy check per subscriber: `action` on `resource` (e.g. devices:read on bulwark:t:device/x). */
  readonly action: string;
  readonly resource: string;
  readonly resourceFleet?: string;
}

export interface TelemetryFilter {
  /** Device id patterns (`*` allowed); absent: every device. */
  readonly devices?: readonly string[];
  /** Telemetry streams (`''` for the default stream); absent: every stream. */
  readonly streams?: readonly string[];
}

export interface Subscription {
  readonly id: string;
  readonly tenant: string;
  /** The service account whose permissions filter the deliveries. */
  readonly accountId: string;
  readonly url: string;
  readonly events: readonly string[];
  readonly filter: TelemetryFilter;
  readonly description: string | null;
  /** Sealed `whsec_...` secret. */
  readonly secretSealed: string;
  readonly status: 'active' | 'disabled';
  readonly createdAt: number;
  readonly createdBy: string;
}

export interface OutboxItem {
  /** Also the `webhook-id`: the same on every retry, so receivers can drop duplicates. */
  readonly id: string;
  readonly tenant: string;
  readonly subscriptionId: string;
  readonly eventType: string;
  readonly payload: string;
  readonly attempts: number;
  readonly nextAttemptAt: number;
  readonly status: 'pending' | 'delivered' | 'failed';
  readonly createdAt: number;
  readonly lastError: string | null;
  readonly deliveredAt: number | null;
}

export interface DeliveryAttempt {
  readonly seq?: number;
  readonly tenant: string;
  readonly subscriptionId: string;
  readonly messageId: string;
  readonly eventType: string;
  readonly attempt: number;
  readonly at: number;
  readonly statusCode: number | null;
  readonly ok: boolean;
  readonly durationMs: number;
  readonly error: string | null;
}

export interface WebhookStore {
  insertSubscription(s: Subscription): Promise<void>;
  listSubscriptions(tenant?: string): Promise<Subscription[]>;
  getSubscription(id: string): Promise<Subscription | undefined>;
  deleteSubscription(id: string): Promise<boolean>;
  enqueue(items: readonly OutboxItem[]): Promise<void>;
  due(now: number, limit: number): Promise<OutboxItem[]>;
  /** Takes the item for `leaseMs` (several nodes share the outbox); false when another node has it. */
  claim(item: OutboxItem, now: number, leaseMs: number): Promise<boolean>;
  markDelivered(id: string, now: number, attempts: number): Promise<void>;
  markRetry(id: string, attempts: number, nextAttemptAt: number, error: string): Promise<void>;
  markFailed(id: string, attempts: number, error: string): Promise<void>;
  logAttempt(a: DeliveryAttempt): Promise<void>;
  attempts(subscriptionId: string, limit: number): Promise<DeliveryAttempt[]>;
}

/** Sends one HTTP POST; the webhooks service knows nothing of sockets. */
export interface WebhookSender {
  send(
    url: string,
    headers: Record<string, string>,
    body: string,
    timeoutMs: number,
  ): Promise<{ status: number }>;
}
