// @bulwark/device: the device SDK. Depends on @bulwark/protocol and MQTT.js only.

export {
  createDevice,
  DeviceClient,
  DeviceClosedError,
  hasCertificate,
  NotConnectedError,
  renewalTime,
  TelemetryRefusedError,
} from './client.ts';
export type {
  CertificateInfo,
  CommandHandler,
  ConnectInfo,
  DesiredHandler,
  DeviceEvents,
  DeviceOptions,
} from './client.ts';
export { backoffDelay, DEFAULT_BACKOFF, type BackoffOptions } from './backoff.ts';
export {
  fileKeyStore,
  generateSoftwareKey,
  KEY_TYPES,
  KeyFileError,
  softwareKey,
  type DeviceKey,
  type KeyStore,
  type KeyType,
  type TlsKeyOptions,
} from './key-store.ts';
export { createCsr } from './csr.ts';
export {
  apiEnroller,
  EnrollmentError,
  type ApiEnrollerOptions,
  type EnrollmentResult,
  type Enroller,
  type EnrollRequest,
  type RenewRequest,
} from './enroller.ts';
export { estEnroller, retryAfterMs, type EstEnroller, type EstEnrollerOptions } from './est.ts';
export { decodeBase64Strict, parseCertsOnlyPkcs7, Pkcs7Error } from './pkcs7.ts';
export {
  fileOutbox,
  memoryOutbox,
  OutboxFullError,
  parseOutboxFile,
  type Outbox,
  type OutboxEntry,
  type OutboxOptions,
} from './outbox.ts';
export { parseProcNet, readListeningPorts, type ListeningPort } from './listening-ports.ts';
export { buildCapabilityReport, type CapabilityOptions } from './capabilities.ts';
export type { CapabilityReport, CommandRequest, CommandResult } from '@bulwark/protocol';
export {
  compareVersions,
  hardwareMatches,
  mqttMessaging,
  MtlsFetcher,
  OtaAgent,
  OtaRefusedError,
  type MtlsFetcherOptions,
  type OtaAgentOptions,
  type OtaEvents,
  type OtaInstaller,
  type OtaMessaging,
  type OtaResult,
  type OtaTarget,
} from './ota/index.ts';
export type { OtaNotice, OtaStatusReport } from '@bulwark/protocol';
