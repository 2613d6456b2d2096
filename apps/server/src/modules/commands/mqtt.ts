// Adapter for the MQTT transport: what a device publishes on its command result, twin reported and
// capabilities topics. Errors are AppErrors; the transport maps them to PUBACK reason codes.

import { parseDeviceTopic } from '@bulwark/protocol';
import { AppError } from '../../kernel/index.ts';
import type { CommandsService } from './service.ts';

export interface DeviceMessageHandler {
  /**
   * Handles a device's publish on one of the topics this module owns; returns false for any other topic.
   * `route: false`: nobody else needs the message (the platform consumed it).
   */
  handle(
    tenant: string,
    deviceId: string,
    topic: string,
    payload: Buffer,
  ): Promise<false | { route: boolean }>;
  /** The device connected (after authentication). */
  connected(tenant: string, deviceId: string): void;
}

export function deviceMessageHandler(
  commands: CommandsService,
  onError: (err: unknown, deviceId: string) => void,
): DeviceMessageHandler {
  return {
    async handle(tenant, deviceId, topic, payload) {
      const parsed = parseDeviceTopic(topic);
      if (!parsed || parsed.deviceId !== deviceId) return false;
      switch (parsed.kind) {
        case 'command-result':
          commands.handleResult(tenant, deviceId, payload);
          return { route: false };
        case 'twin-reported':
          await commands.handleReported(tenant, deviceId, payload);
          return { route: false };
        case 'capabilities':
          await commands.handleCapabilities(tenant, deviceId, payload);
          return { route: false };
        case 'command':
        case 'twin-desired':
          // Platform-to-device topics: a device writing there could forge its own commands or desired state.
          throw new AppError('ERR_POLICY_DENIED', `devices may not publish to ${topic}`);
        default:
          return false;
      }
    },
    connected(tenant, deviceId) {
      commands.deviceConnected(tenant, deviceId).catch((err: unknown) => onError(err, deviceId));
    },
  };
}
