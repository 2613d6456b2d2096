export {
  createTelemetryService,
  parsePayload,
  type TelemetryService,
  type TelemetryOptions,
  type TelemetryPoint,
} from './service.ts';
export { createTelemetryStore } from './store.ts';
export { createBatcher, type Batcher } from './batcher.ts';
export type { TelemetryRecord, TelemetryStore } from './model.ts';
export { telemetryRoutes } from './http.ts';
