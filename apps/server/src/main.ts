// Load config, build the app, listen, handle signals: nothing else.
import { loadConfig } from './config/index.ts';
import { buildApp } from './app.ts';
import { isAppError, jsonLogger } from './kernel/index.ts';

const configFlag = process.argv.indexOf('--config');
const file = configFlag > 0 ? process.argv[configFlag + 1] : undefined;

let config;
try {
  config = loadConfig(file ? { file } : {});
} catch (err) {
  if (isAppError(err)) {
    console.error(`bulwark: ${err.message}:`);
    for (const e of err.errors ?? []) console.error(`  - ${e.message}`);
    process.exit(1);
  }
  throw err;
}

const logger = jsonLogger(config.log.level, { service: 'bulwark' });
const say = (line: string) => process.stdout.write(`${line}\n`);

say(`bulwark: starting (data in ${config.dataDir})…`);
const app = await buildApp(config, { logger }).catch((err: unknown) => {
  console.error(`bulwark: could not start: ${(err as Error).message}`);
  process.exit(1);
});
const { httpPort, mqttPort } = await app.start().catch(async (err: unknown) => {
  console.error(`bulwark: could not listen: ${(err as Error).message}`);
  await app.close();
  process.exit(1);
});

const host = config.hostnames[0] ?? 'localhost';
const h = host.includes(':') ? `[${host}]` : host;
say(`bulwark: ready`);
say(`  API        https://${h}:${httpPort}/api/v1   (OpenAPI: https://${h}:${httpPort}/api/v1/openapi.json)`);
say(`  MQTT       mqtts://${h}:${mqttPort}           (mutual TLS: devices present their certificate)`);
say(`  CA         ${app.paths.caFile}   (trust this to reach the platform)`);
if (app.initialTokenWritten) {
  say(`  Owner      one-time API token written to ${app.paths.initialTokenFile} (mode 0600).`);
  say(`             Read it once, keep it in a secret store, then delete the file.`);
}

let stopping = false;
const stop = async (signal: string) => {
  if (stopping) return;
  stopping = true;
  say(`bulwark: ${signal}, shutting down…`);
  const force = setTimeout(() => process.exit(1), 10_000);
  force.unref();
  await app.close();
  process.exit(0);
};
process.on('SIGINT', () => void stop('SIGINT'));
process.on('SIGTERM', () => void stop('SIGTERM'));
