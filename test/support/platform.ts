// Starts a real platform (real TLS listeners on loopback, port 0) for end-to-end tests.
import 'reflect-metadata';
import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { buildApp, type App, type AppDeps } from '../../apps/server/src/app.ts';
import { loadConfig } from '../../apps/server/src/config/index.ts';
import { silentLogger, type Clock } from '../../apps/server/src/kernel/index.ts';
import { tempDir, pgUrl, dropSchema } from './db.ts';
import { randomBytes } from 'node:crypto';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

export interface Platform {
  app: App;
  dataDir: string;
  url: string;
  httpPort: number;
  mqttPort: number;
  token: string;
  ca: string;
  api<T = unknown>(
    method: string,
    path: string,
    body?: unknown,
    token?: string,
  ): Promise<{ status: number; body: T; headers: Record<string, unknown> }>;
  close(): Promise<void>;
}

export async function startPlatform(
  opts: {
    clock?: Clock;
    postgres?: boolean;
    env?: Record<string, string>;
    iam?: AppDeps['iam'];
    webhooks?: AppDeps['webhooks'];
    /**
     * PostgreSQL schema shared with other nodes (with `postgres`); the caller drops it. Such a node
     * bootstraps no owner when another did: its `token` is then ''.
     */
    sharedSchema?: string;
  } = {},
): Promise<Platform> {
  const dir = tempDir('bulwark-platform-');
  const ownSchema = opts.postgres && !opts.sharedSchema ? `t_${randomBytes(6).toString('hex')}` : undefined;
  const schema = opts.postgres ? (opts.sharedSchema ?? ownSchema) : undefined;
  const config = loadConfig({
    env: {
      BULWARK_DATA_DIR: dir.path,
      BULWARK_HTTP_PORT: '0',
      BULWARK_MQTT_PORT: '0',
      BULWARK_HTTP_HOST: '127.0.0.1',
      BULWARK_MQTT_HOST: '127.0.0.1',
      BULWARK_HOSTNAMES: 'localhost,127.0.0.1',
      BULWARK_LOG_LEVEL: 'silent',
      ...(opts.postgres && pgUrl ? { BULWARK_DATABASE_URL: pgUrl } : {}),
      ...opts.env,
    },
  });
  const app = await buildApp(config, {
    logger: silentLogger,
    ...(opts.clock ? { clock: opts.clock } : {}),
    ...(opts.iam ? { iam: opts.iam } : {}),
    ...(opts.webhooks ? { webhooks: opts.webhooks } : {}),
    ...(schema ? { databaseSchema: schema } : {}),
  });
  const { httpPort, mqttPort } = await app.start();
  const token = app.initialTokenWritten ? readFileSync(app.paths.initialTokenFile, 'utf8').trim() : '';
  const ca = readFileSync(app.paths.caFile, 'utf8');
  const url = `https://127.0.0.1:${httpPort}`;
  return {
    app,
    dataDir: dir.path,
    url,
    httpPort,
    mqttPort,
    token,
    ca,
    api: (method, path, body, tok = token) => httpsJson(url, ca, method, path, body, tok),
    async close() {
      await app.close();
      if (ownSchema && pgUrl) await dropSchema(pgUrl, ownSchema);
      dir.cleanup();
    },
  };
}

export function httpsJson<T>(
  base: string,
  ca: string,
  method: string,
  path: string,
  body?: unknown,
  token?: string,
): Promise<{ status: number; body: T; headers: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = request(
      new URL(path, base),
      {
        method,
        ca,
        headers: {
          ...(token ? { authorization: `Bearer ${token}` } : {}),
          ...(payload !== undefined ? { 'content-type': 'application/json' } : {}),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed: unknown = text;
          try {
            parsed = text ? JSON.parse(text) : undefined;
          } catch {
            // not JSON
          }
          resolve({ status: res.statusCode ?? 0, body: parsed as T, headers: res.headers });
        });
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

export interface DeviceCredentials {
  id: string;
  key: string;
  cert: string;
  chain: string;
  ca: string;
  serial: string;
}

/** A key made "on the device", and a CSR for it. */
export async function makeCsr(
  commonName: string,
  alg: 'P-256' | 'P-384' = 'P-256',
): Promise<{ keyPem: string; csrPem: string }> {
  const algorithm = { name: 'ECDSA', namedCurve: alg, hash: alg === 'P-256' ? 'SHA-256' : 'SHA-384' };
  const keys = (await webcrypto.subtle.generateKey(algorithm, true, ['sign', 'verify'])) as CryptoKeyPair;
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: `CN=${commonName}`,
    keys,
    signingAlgorithm: algorithm,
  });
  const pkcs8 = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey);
  return { keyPem: x509.PemConverter.encode(pkcs8, 'PRIVATE KEY'), csrPem: csr.toString('pem') };
}

/** Registers a device and has the platform sign its CSR, as `bulwark device create` does. */
export async function enrollDevice(p: Platform, id: string): Promise<DeviceCredentials> {
  const created = await p.api('POST', '/api/v1/devices', { id });
  if (created.status !== 201)
    throw new Error(`create ${id}: ${created.status} ${JSON.stringify(created.body)}`);
  const { keyPem, csrPem } = await makeCsr(id);
  const issued = await p.api<{ certificate: string; chain: string; ca: string; serial: string }>(
    'POST',
    `/api/v1/devices/${id}/certificates`,
    { csr: csrPem },
  );
  if (issued.status !== 201) throw new Error(`issue ${id}: ${issued.status} ${JSON.stringify(issued.body)}`);
  return {
    id,
    key: keyPem,
    cert: issued.body.certificate,
    chain: issued.body.chain,
    ca: issued.body.ca,
    serial: issued.body.serial,
  };
}

export function connectDevice(
  p: Platform,
  creds: { key: string; chain: string; ca: string },
  options: IClientOptions & { clientId: string },
): Promise<MqttClient> {
  return new Promise((resolve, reject) => {
    const client = mqtt.connect({
      protocol: 'mqtts',
      host: '127.0.0.1',
      port: p.mqttPort,
      key: creds.key,
      cert: creds.chain,
      ca: creds.ca,
      servername: 'localhost',
      reconnectPeriod: 0,
      connectTimeout: 5000,
      protocolVersion: 5,
      ...options,
    });
    const fail = (err: Error) => {
      client.end(true);
      reject(err);
    };
    client.once('connect', () => {
      client.off('error', fail);
      resolve(client);
    });
    client.once('error', fail);
    client.once('close', () => fail(new Error('connection closed before CONNACK')));
  });
}

export async function waitFor<T>(
  fn: () => Promise<T | undefined> | T | undefined,
  ms = 3000,
  step = 20,
): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > until) throw new Error('timed out waiting for condition');
    await new Promise((r) => setTimeout(r, step));
  }
}
