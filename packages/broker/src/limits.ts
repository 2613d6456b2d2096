import type { BrokerLimits } from './types.ts';

export const SESSION_NEVER_EXPIRES = 0xffffffff;

export const defaultLimits: Readonly<BrokerLimits> = Object.freeze({
  maxPacketSize: 256 * 1024,
  receiveMaximum: 64,
  maxPendingInbound: 64,
  maxInflight: 64,
  maxQueued: 1000,
  maxBufferedBytes: 1024 * 1024,
  keepAliveMax: 0,
  connectTimeoutMs: 10_000,
  topicAliasMaximum: 32,
  serverKeepAlive: undefined,
  maxSessionExpiryInterval: SESSION_NEVER_EXPIRES,
  maxSubscriptionsPerClient: 1000,
  maxTopicLevels: 64,
  maxClientIdLength: 256,
});

interface Range {
  min: number;
  max: number;
}

const ranges: Record<Exclude<keyof BrokerLimits, 'serverKeepAlive'>, Range> = {
  // 268 435 455 is the largest remaining length the variable byte integer can carry, plus 5 header bytes.
  maxPacketSize: { min: 64, max: 268_435_460 },
  receiveMaximum: { min: 1, max: 65_535 },
  maxPendingInbound: { min: 1, max: 65_535 },
  maxInflight: { min: 1, max: 65_535 },
  maxQueued: { min: 0, max: 10_000_000 },
  maxBufferedBytes: { min: 0, max: 2 ** 31 },
  keepAliveMax: { min: 0, max: 65_535 },
  connectTimeoutMs: { min: 1, max: 600_000 },
  topicAliasMaximum: { min: 0, max: 65_535 },
  maxSessionExpiryInterval: { min: 0, max: SESSION_NEVER_EXPIRES },
  maxSubscriptionsPerClient: { min: 1, max: 1_000_000 },
  maxTopicLevels: { min: 1, max: 1024 },
  maxClientIdLength: { min: 1, max: 65_535 },
};

/** Merges with the defaults, validates (all violations listed at once) and freezes. */
export function resolveLimits(input: Partial<BrokerLimits> | undefined): Readonly<BrokerLimits> {
  const merged: BrokerLimits = { ...defaultLimits };
  const errors: string[] = [];
  for (const [key, value] of Object.entries(input ?? {})) {
    if (key === 'serverKeepAlive') {
      if (value === undefined) continue;
      if (!Number.isInteger(value) || (value as number) < 0 || (value as number) > 65_535) {
        errors.push(`limits.serverKeepAlive must be an integer in [0, 65535], got ${String(value)}`);
      } else merged.serverKeepAlive = value as number;
      continue;
    }
    const range = ranges[key as keyof typeof ranges] as Range | undefined;
    if (!range) {
      errors.push(`limits.${key} is not a known limit`);
      continue;
    }
    if (value === undefined) continue;
    if (!Number.isInteger(value) || (value as number) < range.min || (value as number) > range.max) {
      errors.push(`limits.${key} must be an integer in [${range.min}, ${range.max}], got ${String(value)}`);
      continue;
    }
    (merged as unknown as Record<string, number>)[key] = value as number;
  }
  // Unless set, the socket is paused at the advertised Receive Maximum.
  if (input?.maxPendingInbound === undefined) merged.maxPendingInbound = merged.receiveMaximum;
  if (errors.length > 0) throw new TypeError(`invalid broker limits:\n  ${errors.join('\n  ')}`);
  return Object.freeze(merged);
}
