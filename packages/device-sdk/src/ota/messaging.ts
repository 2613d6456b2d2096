// OtaMessaging over an MQTT.js client (the device's own mutual-TLS session): QoS 1 both ways.
import type { MqttClient } from 'mqtt';
import type { OtaMessaging } from './agent.ts';

export function mqttMessaging(client: MqttClient): OtaMessaging {
  const handlers = new Map<string, (payload: Buffer) => void>();
  client.on('message', (topic, payload) => handlers.get(topic)?.(payload));
  return {
    async subscribe(topic, onMessage) {
      handlers.set(topic, onMessage);
      const granted = await client.subscribeAsync(topic, { qos: 1 });
      if (granted.some((g) => g.qos > 2)) throw new Error(`subscription to ${topic} refused`);
    },
    async publish(topic, payload) {
      await client.publishAsync(topic, payload, { qos: 1 });
    },
  };
}
