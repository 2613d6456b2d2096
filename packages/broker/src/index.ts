// @bulwark/broker: MQTT 3.1.1 and 5.0 broker core. Transport-agnostic (any Duplex stream), with
// authentication/authorization hooks and ports for sessions, retained messages and cluster routing.
import { BrokerImpl } from './broker.ts';
import type { Broker, BrokerOptions } from './types.ts';

export function createBroker<P = unknown>(options: BrokerOptions<P>): Broker<P> {
  return new BrokerImpl<P>(options);
}

export type {
  AuthenticateResult,
  AuthzResult,
  Broker,
  BrokerHooks,
  BrokerLimits,
  BrokerMetrics,
  BrokerOptions,
  ClientHandle,
  Clock,
  ClusterRouter,
  EnhancedAuthContext,
  EnhancedAuthResult,
  Logger,
  MessageProperties,
  PublishOptions,
  RefusedInfo,
  RetainedMessage,
  RetainedStore,
  RoutedMessage,
  SessionStore,
  StoredInflight,
  StoredMessage,
  StoredSession,
  StoredSubscription,
  SubscriptionInfo,
  TransportInfo,
} from './types.ts';
export { defaultLimits, resolveLimits, SESSION_NEVER_EXPIRES } from './limits.ts';
export { ReasonCode, ConnackReturnCode, toV3ConnackCode } from './reason-codes.ts';
export { MemorySessionStore } from './memory-session-store.ts';
export { MemoryRetainedStore } from './memory-retained-store.ts';
export { LocalRouter } from './local-router.ts';
export { isValidTopicName, isValidTopicFilter, parseSubscriptionFilter, topicMatches } from './topic.ts';
