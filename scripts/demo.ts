// npm run demo [-- --devices N --rate R --fail-ota P]: the platform on its embedded default (SQLite,
// data in ./data-demo) plus a fleet of simulated devices (`bulwark simulate`: each enrolls over EST),
// and where to look.
// Ctrl-C stops both. Delete ./data-demo to start from scratch.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { request } from 'node:https';
import { join, relative, resolve } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    devices: { type: 'string', default: '30' },
    rate: { type: 'string', default: '30' },
    'fail-ota': { type: 'string', default: '0.1' },
    'data-dir': { type: 'string', default: process.env.BULWARK_DATA_DIR ?? 'data-demo' },
  },
});
const root = resolve(import.meta.dirname, '..');
const dataDir = resolve(values['data-dir']);
const httpPort = process.env.BULWARK_HTTP_PORT ?? '8443';
const mqttPort = process.env.BULWARK_MQTT_PORT ?? '8883';
const caFile = join(dataDir, 'tls', 'ca.crt');
const tokenFile = join(dataDir, 'secrets', 'initial-admin-token');
const url = `https://localhost:${httpPort}`;
const shown = (p: string) => (relative(process.cwd(), p).startsWith('..') ? p : relative(process.cwd(), p));

const children: ChildProcess[] = [];
let stopping = false;
const stop = async (code: number) => {
  if (stopping) return;
  stopping = true;
  process.stderr.write('\nstopping the simulator and the platform…\n');
  for (const c of [...children].reverse()) {
    if (c.exitCode !== null) continue;
    c.kill('SIGINT');
    await new Promise((r) => c.once('close', r));
  }
  process.exit(code);
};
process.on('SIGINT', () => void stop(0));
process.on('SIGTERM', () => void stop(0));
process.on('exit', () => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
});

function ready(ca: string): Promise<boolean> {
  return new Promise((resolveReady) => {
    const req = request(`${url}/readyz`, { ca, timeout: 1000 }, (res) => {
      res.resume();
      resolveReady(res.statusCode === 200);
    });
    req.on('error', () => resolveReady(false));
    req.on('timeout', () => req.destroy());
    req.end();
  });
}

process.stderr.write(`starting the platform (data in ${shown(dataDir)})…\n`);
const server = spawn(process.execPath, [join(root, 'apps/server/src/main.ts')], {
  env: {
    ...process.env,
    BULWARK_DATA_DIR: dataDir,
    BULWARK_HTTP_PORT: httpPort,
    BULWARK_MQTT_PORT: mqttPort,
    BULWARK_LOG_LEVEL: process.env.BULWARK_LOG_LEVEL ?? 'warn',
  },
  stdio: ['ignore', 'ignore', 'inherit'],
  // Own process groups: Ctrl-C reaches this script only, which stops the children in order, once.
  detached: true,
});
children.push(server);
server.on('close', (code) => {
  if (!stopping) {
    process.stderr.write(`the platform exited (${code}); is port ${httpPort} or ${mqttPort} in use?\n`);
    void stop(1);
  }
});

for (let i = 0; ; i++) {
  if (existsSync(caFile) && (await ready(readFileSync(caFile, 'utf8')))) break;
  if (i > 600) {
    process.stderr.write('the platform did not become ready within 60 s\n');
    await stop(1);
  }
  await delay(100);
}
if (!existsSync(tokenFile)) {
  process.stderr.write(
    `${shown(tokenFile)} is gone (it is written on the first start only), so the simulator cannot enroll devices.\n` +
      `Start over with: rm -rf ${shown(dataDir)} && npm run demo\n`,
  );
  await stop(1);
}
const token = readFileSync(tokenFile, 'utf8').trim();

const first = 'demo-0001';
const api = `${url}/api/v1`;
const curl = `curl --cacert ${shown(caFile)} -H "Authorization: Bearer $BULWARK_TOKEN"`;
process.stdout.write(
  [
    '',
    'Bulwark demo is running.',
    '',
    `  REST API    ${api}   (OpenAPI: ${api}/openapi.json)`,
    `  MQTT        mqtts://localhost:${mqttPort}   and MQTT over WebSocket wss://localhost:${httpPort}/mqtt`,
    `  CA          ${shown(caFile)}`,
    `  owner token ${shown(tokenFile)}   (a demo keeps it; in production read it once and delete it)`,
    '',
    'Sign in from another terminal:',
    `  export BULWARK_URL=${url} BULWARK_CA_FILE=${shown(caFile)} BULWARK_TOKEN=$(cat ${shown(tokenFile)})`,
    '',
    'Then look around:',
    '  npx bulwark device list',
    `  npx bulwark telemetry ${first} --follow`,
    `  ${curl} -X POST -H 'content-type: application/json' -d '{"name":"ping"}' ${api}/devices/${first}/commands`,
    `  ${curl} -X PUT -H 'content-type: application/json' -d '{"desired":{"firmware":"1.1.0"}}' ${api}/devices/${first}/twin`,
    `  ${curl} ${api}/devices/${first}/twin`,
    `  ${curl} ${api}/devices/${first}/capabilities`,
    '  npx bulwark audit --action est.enroll     # how each device got its certificate',
    '',
    `Simulating ${values.devices} devices at ${values.rate} msg/s in total (firmware updates fail with p=${values['fail-ota']});`,
    'each has its own key and enrolls over EST with an enrollment code the simulator makes.',
    'Ctrl-C stops everything.',
    '',
  ].join('\n') + '\n',
);

const simulator = spawn(
  process.execPath,
  [
    join(root, 'packages/cli/bin/bulwark.js'),
    'simulate',
    '--devices',
    values.devices,
    '--rate',
    values.rate,
    '--fail-ota',
    values['fail-ota'],
    '--prefix',
    'demo',
    '--state-dir',
    join(dataDir, 'simulator'),
    '--mqtt-url',
    `mqtts://localhost:${mqttPort}`,
  ],
  {
    env: { ...process.env, BULWARK_URL: url, BULWARK_TOKEN: token, BULWARK_CA_FILE: caFile },
    stdio: ['ignore', 'inherit', 'inherit'],
    detached: true,
  },
);
children.push(simulator);
simulator.on('close', (code) => {
  if (!stopping) {
    process.stderr.write(`the simulator exited (${code})\n`);
    void stop(code ?? 1);
  }
});
