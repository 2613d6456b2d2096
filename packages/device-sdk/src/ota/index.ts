export {
  OtaAgent,
  OtaRefusedError,
  type OtaAgentOptions,
  type OtaEvents,
  type OtaInstaller,
  type OtaMessaging,
  type OtaResult,
  type OtaTarget,
} from './agent.ts';
export { MtlsFetcher, type MtlsFetcherOptions } from './fetcher.ts';
export { mqttMessaging } from './messaging.ts';
export { compareVersions, hardwareMatches } from './version.ts';
