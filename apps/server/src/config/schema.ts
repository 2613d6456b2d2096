// Every option has a description; docs/configuration.md is generated from this table.
// Order of precedence: defaults <- config file (JSON) <- BULWARK_* environment variables.

export type OptionType = 'string' | 'port' | 'integer' | 'hostnames' | 'enum' | 'path' | 'database-url';

export interface OptionSpec {
  /** Dotted path in the config object / file. */
  readonly key: string;
  readonly env: string;
  readonly type: OptionType;
  readonly description: string;
  /** Default as a string ("" = none). `${dataDir}` is expanded. */
  readonly default: string;
  readonly min?: number;
  readonly max?: number;
  readonly values?: readonly string[];
}

export const options: readonly OptionSpec[] = [
  {
    key: 'dataDir',
    env: 'BULWARK_DATA_DIR',
    type: 'path',
    default: './data',
    description: 'Directory for the embedded database, TLS material and secrets. Created with mode 0700.',
  },
  {
    key: 'hostnames',
    env: 'BULWARK_HOSTNAMES',
    type: 'hostnames',
    default: 'localhost,127.0.0.1,::1',
    description:
      'Comma-separated DNS names and IP addresses the server certificate is issued for (what devices and browsers connect to).',
  },
  {
    key: 'mqtt.host',
    env: 'BULWARK_MQTT_HOST',
    type: 'string',
    default: '::',
    description: 'Address the MQTT over TLS listener binds to.',
  },
  {
    key: 'mqtt.port',
    env: 'BULWARK_MQTT_PORT',
    type: 'port',
    default: '8883',
    description: 'Port of the MQTT over TLS listener (mutual TLS; there is no plaintext listener).',
  },
  {
    key: 'mqtt.maxPacketSize',
    env: 'BULWARK_MQTT_MAX_PACKET_SIZE',
    type: 'integer',
    default: '262144',
    min: 1024,
    max: 268435455,
    description: 'Largest MQTT packet accepted, in bytes; larger packets are refused (MQTT 5 reason 0x95).',
  },
  {
    key: 'mqtt.keepAliveMax',
    env: 'BULWARK_MQTT_KEEPALIVE_MAX',
    type: 'integer',
    default: '1200',
    min: 10,
    max: 65535,
    description:
      'Largest keep-alive, in seconds, a client may ask for; MQTT 5 clients are told the server keep-alive.',
  },
  {
    key: 'mqtt.tlsMinVersion',
    env: 'BULWARK_MQTT_TLS_MIN_VERSION',
    type: 'enum',
    values: ['TLSv1.2', 'TLSv1.3'],
    default: 'TLSv1.2',
    description: 'Oldest TLS version devices may use (TLS 1.2 keeps older device generations connected).',
  },
  {
    key: 'http.host',
    env: 'BULWARK_HTTP_HOST',
    type: 'string',
    default: '::',
    description: 'Address the HTTPS listener binds to.',
  },
  {
    key: 'http.port',
    env: 'BULWARK_HTTP_PORT',
    type: 'port',
    default: '8443',
    description: 'Port of the HTTPS listener (REST API, OpenAPI, health).',
  },
  {
    key: 'http.bodyLimit',
    env: 'BULWARK_HTTP_BODY_LIMIT',
    type: 'integer',
    default: '1048576',
    min: 1024,
    max: 104857600,
    description: 'Largest HTTP request body accepted, in bytes.',
  },
  {
    key: 'database.url',
    env: 'BULWARK_DATABASE_URL',
    type: 'database-url',
    default: 'sqlite:${dataDir}/bulwark.db',
    description:
      'Database: `sqlite:/path/file.db` (embedded default) or `postgres://user@host:5432/db` for scale-out.',
  },
  {
    key: 'tenant',
    env: 'BULWARK_TENANT',
    type: 'string',
    default: 'default',
    description: 'Label of the tenant created on first start (lower-case letters, digits and `-`).',
  },
  {
    key: 'telemetry.maxPayloadBytes',
    env: 'BULWARK_TELEMETRY_MAX_PAYLOAD_BYTES',
    type: 'integer',
    default: '65536',
    min: 16,
    max: 16777216,
    description: 'Largest telemetry payload accepted, in bytes.',
  },
  {
    key: 'telemetry.batchMaxSize',
    env: 'BULWARK_TELEMETRY_BATCH_MAX_SIZE',
    type: 'integer',
    default: '512',
    min: 1,
    max: 100000,
    description: 'Most telemetry messages written in one transaction (group commit).',
  },
  {
    key: 'telemetry.batchMaxDelayMs',
    env: 'BULWARK_TELEMETRY_BATCH_MAX_DELAY_MS',
    type: 'integer',
    default: '5',
    min: 0,
    max: 1000,
    description: 'Longest a telemetry message waits for its batch to fill before the batch is committed.',
  },
  {
    key: 'telemetry.queueMax',
    env: 'BULWARK_TELEMETRY_QUEUE_MAX',
    type: 'integer',
    default: '20000',
    min: 1,
    max: 10000000,
    description:
      'Most telemetry messages waiting for commit; past it new messages are refused (not acknowledged) until the queue drains.',
  },
  {
    key: 'pki.deviceCertDays',
    env: 'BULWARK_PKI_DEVICE_CERT_DAYS',
    type: 'integer',
    default: '90',
    min: 1,
    max: 397,
    description: 'Lifetime of device certificates, in days (short-lived; devices renew before expiry).',
  },
  {
    key: 'ota.maxArtifactBytes',
    env: 'BULWARK_OTA_MAX_ARTIFACT_BYTES',
    type: 'integer',
    default: '268435456',
    min: 1024,
    max: 17179869184,
    description:
      'Largest release artifact accepted, in bytes; an upload is stopped (and nothing kept) as soon as it goes past.',
  },
  {
    key: 'ota.signing',
    env: 'BULWARK_OTA_SIGNING',
    type: 'enum',
    values: ['offline', 'online'],
    default: 'offline',
    description:
      'Who holds the TUF root and targets keys. `offline`: operators, with `bulwark release keygen|sign`; the platform never sees them. `online`: the platform (labs only: a compromised server could then release anything).',
  },
  {
    key: 'ota.targetsExpiryDays',
    env: 'BULWARK_OTA_TARGETS_EXPIRY_DAYS',
    type: 'integer',
    default: '90',
    min: 1,
    max: 730,
    description: 'Lifetime of signed targets metadata, in days: releases must be re-signed before it ends.',
  },
  {
    key: 'ota.timestampExpirySeconds',
    env: 'BULWARK_OTA_TIMESTAMP_EXPIRY_SECONDS',
    type: 'integer',
    default: '86400',
    min: 300,
    max: 2592000,
    description:
      'Lifetime of TUF timestamp metadata (online key), re-signed at half-life. A device refuses updates from a repository frozen longer than this.',
  },
  {
    key: 'secrets.masterKey',
    env: 'BULWARK_MASTER_KEY',
    type: 'string',
    default: '',
    description:
      'Base64 of the 32-byte key that encrypts CA keys at rest. Unset: read from, or created in, `<dataDir>/secrets/master.key` (mode 0600).',
  },
  {
    key: 'cluster.natsUrl',
    env: 'BULWARK_CLUSTER_NATS_URL',
    type: 'string',
    default: '',
    description:
      'NATS server(s) with JetStream joining this node to a cluster (`nats://host:4222`, comma-separated for several). Nodes forward MQTT messages to each other only for topics the other node has subscribers for; QoS 1/2 go through a durable JetStream queue per node. Unset: a single node. Nodes of one cluster also share the database (PostgreSQL).',
  },
  {
    key: 'log.level',
    env: 'BULWARK_LOG_LEVEL',
    type: 'enum',
    values: ['debug', 'info', 'warn', 'error', 'silent'],
    default: 'info',
    description: 'Log level; logs are JSON lines on stderr.',
  },
];

export interface Config {
  readonly dataDir: string;
  readonly hostnames: readonly string[];
  readonly mqtt: {
    readonly host: string;
    readonly port: number;
    readonly maxPacketSize: number;
    readonly keepAliveMax: number;
    readonly tlsMinVersion: 'TLSv1.2' | 'TLSv1.3';
  };
  readonly http: { readonly host: string; readonly port: number; readonly bodyLimit: number };
  readonly database: { readonly url: string };
  readonly tenant: string;
  readonly telemetry: {
    readonly maxPayloadBytes: number;
    readonly batchMaxSize: number;
    readonly batchMaxDelayMs: number;
    readonly queueMax: number;
  };
  readonly pki: { readonly deviceCertDays: number };
  readonly ota: {
    readonly maxArtifactBytes: number;
    readonly signing: 'offline' | 'online';
    readonly targetsExpiryDays: number;
    readonly timestampExpirySeconds: number;
  };
  readonly secrets: { readonly masterKey: string };
  readonly cluster: { readonly natsUrl: string };
  readonly log: { readonly level: 'debug' | 'info' | 'warn' | 'error' | 'silent' };
}
