export {
  createDeviceService,
  isValidFleetPath,
  MAX_FLEET_DEPTH,
  QUARANTINE,
  validateAttributes,
  type CapabilityLookup,
  type DeviceService,
  type GroupView,
} from './service.ts';
export { createDeviceStore } from './store.ts';
export {
  compareVersions,
  matchesQuery,
  parseQuery,
  usesCapabilities,
  type Query,
  type QueryTarget,
} from './query.ts';
export type {
  Device,
  DeviceEvent,
  DeviceGroup,
  DeviceStatus,
  DeviceStore,
  Fleet,
  GroupKind,
} from './model.ts';
export { deviceRoutes, deviceJson, certificateJson, type DeviceRouteDeps } from './http.ts';
export { fleetRoutes, groupRoutes, type FleetRouteDeps } from './fleet-http.ts';
