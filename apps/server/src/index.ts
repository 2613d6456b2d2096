export { buildApp, VERSION, type App, type AppDeps } from './app.ts';
export { loadConfig, options, type Config } from './config/index.ts';
