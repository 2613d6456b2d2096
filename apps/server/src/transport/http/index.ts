export {
  buildHttpApp,
  operationId,
  parseCookies,
  SESSION_COOKIE,
  SSO_COOKIE,
  type HttpAppDeps,
} from './app.ts';
export { rateLimitHook } from './rate-limit.ts';
export { problem, sendProblem } from './errors.ts';
export { registerPkiEndpoints, type PkiEndpointDeps } from './est.ts';
export { registerOtaEndpoints, parseRange, type OtaEndpointDeps } from './ota.ts';
export * from './schemas.ts';
