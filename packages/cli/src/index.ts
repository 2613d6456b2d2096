// Library entry of @bulwark/cli: the API client (reused by tests and the device simulator) and device key helpers.

export { ApiError, ConnectionError, createApiClient, parseBaseUrl } from './http.ts';
export type { ApiClient, ApiClientOptions, ApiProblem, ApiResponse, RequestOptions } from './http.ts';
export {
  createCsr,
  generateDeviceKey,
  isKeyType,
  KEY_TYPES,
  keyTypeLabel,
  privateKeyPem,
  writeNewFile,
} from './keys.ts';
export type { KeyType } from './keys.ts';
export type * from './types.ts';
export { run } from './cli.ts';
