export {
  createCommandsService,
  LIMITS as COMMAND_LIMITS,
  type CommandsService,
  type CommandsDeps,
} from './service.ts';
export { createCommandsStore } from './store.ts';
export { commandRoutes, twinJson } from './http.ts';
export { deviceMessageHandler, type DeviceMessageHandler } from './mqtt.ts';
export { validateCapabilities } from './capabilities.ts';
export type {
  CapabilityVersion,
  CommandOutcome,
  CommandStatus,
  CommandsStore,
  OutboundMessage,
  Twin,
} from './model.ts';
