export { buildHttpApp, type HttpAppDeps } from './app.ts';
export { problem, sendProblem } from './errors.ts';
export * from './schemas.ts';
