export { buildHttpApp, type HttpAppDeps } from './app.ts';
export { problem, sendProblem } from './errors.ts';
export { registerPkiEndpoints, type PkiEndpointDeps } from './est.ts';
export * from './schemas.ts';
