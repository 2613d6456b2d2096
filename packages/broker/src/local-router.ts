import type { ClusterRouter, RoutedMessage } from './types.ts';

/** The single-node router: there are no other nodes, so there is nothing to announce or forward. */
export class LocalRouter implements ClusterRouter {
  attach(_deliver: (message: RoutedMessage) => void): void {}
  subscribe(_filter: string): void {}
  unsubscribe(_filter: string): void {}
  forward(_message: RoutedMessage): void {}
}
