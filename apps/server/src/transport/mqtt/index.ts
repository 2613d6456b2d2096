export {
  createMqttTransport,
  type MqttTransport,
  type MqttTransportDeps,
  type DeviceSession,
} from './listener.ts';
