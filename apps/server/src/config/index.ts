export { loadConfig, options, type Config, type LoadOptions } from './load.ts';
