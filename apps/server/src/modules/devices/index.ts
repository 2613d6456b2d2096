export { createDeviceService, type DeviceService } from './service.ts';
export { createDeviceStore } from './store.ts';
export type { Device, DeviceEvent, DeviceStatus, DeviceStore } from './model.ts';
export { deviceRoutes, deviceJson, certificateJson, type DeviceRouteDeps } from './http.ts';
