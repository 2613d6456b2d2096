// Adapter for the MQTT transport: a device's tamper report on devices/{id}/events/tamper. Errors are
// AppErrors; the transport maps them to PUBACK reason codes (and audits the refusal).
import { parseDeviceTopic } from '@bulwark/protocol';
import type { PostureService } from './service.ts';

export interface TamperMessageHandler {
  /** Handles the device's own tamper topic; false for any other topic. */
  handle(
    tenant: string,
    deviceId: string,
    topic: string,
    payload: Buffer,
  ): Promise<false | { route: boolean }>;
}

export function tamperMessageHandler(posture: PostureService): TamperMessageHandler {
  return {
    async handle(tenant, deviceId, topic, payload) {
      const parsed = parseDeviceTopic(topic);
      if (parsed?.kind !== 'tamper' || parsed.deviceId !== deviceId) return false;
      await posture.tamperReported(tenant, deviceId, payload);
      // Also routed: an application subscribed to the device's events may act on it at once.
      return { route: true };
    },
  };
}
