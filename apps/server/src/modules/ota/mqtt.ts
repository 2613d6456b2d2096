// Adapter for the MQTT transport: a device's update progress on `devices/{id}/ota/status`.
// Errors are AppErrors; the transport maps them to PUBACK reason codes.
import { parseDeviceTopic } from '@bulwark/protocol';
import { AppError } from '../../kernel/index.ts';
import type { CampaignService } from './campaigns.ts';

export interface OtaMessageHandler {
  /** Handles the OTA topics; false for any other topic (another handler's). */
  handle(
    tenant: string,
    deviceId: string,
    topic: string,
    payload: Buffer,
  ): Promise<false | { route: boolean }>;
  connected(tenant: string, deviceId: string): void;
}

export function otaMessageHandler(campaigns: CampaignService): OtaMessageHandler {
  return {
    async handle(tenant, deviceId, topic, payload) {
      const parsed = parseDeviceTopic(topic);
      if (parsed?.kind !== 'other' || parsed.deviceId !== deviceId) return false;
      if (parsed.rest === 'ota/status') {
        await campaigns.report(tenant, deviceId, payload);
        return { route: false };
      }
      // Platform-to-device topic: a device writing there could forge its own update notices.
      if (parsed.rest === 'ota/notify')
        throw new AppError('ERR_POLICY_DENIED', `devices may not publish to ${topic}`);
      return false;
    },
    // Notices are retained: a device that comes back gets its pending notice from the broker itself.
    connected() {},
  };
}
