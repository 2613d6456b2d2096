// Composition root: builds stores, services and transports from the config, and tears them down.
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import { isIP } from 'node:net';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { capabilityFields } from '@bulwark/protocol';
import type { Config } from './config/index.ts';
import { randomIds, systemClock, type Clock, type Db, type Ids, type Logger } from './kernel/index.ts';
import { openDatabase } from './infra/database/index.ts';
import { createKeyProtector } from './infra/keys/index.ts';
import { createSqlRetainedStore, createSqlSessionStore } from './infra/mqtt-store/index.ts';
import { createNatsRouter } from './infra/cluster/nats-router.ts';
import { createMetricsService, metricsRoutes } from './modules/metrics/index.ts';
import { createPkiService, createPkiStore, pkiRoutes, type PkiService } from './modules/pki/index.ts';
import { createEstService, createEstStore, estRoutes, type EstService } from './modules/est/index.ts';
import { createLocalClusterEvents, createPostgresClusterEvents } from './infra/cluster/index.ts';
import { registerOtaEndpoints, registerPkiEndpoints } from './transport/http/index.ts';
import { createFsBlobStore } from './infra/blobs/index.ts';
import {
  createCampaignService,
  createOtaStore,
  createRepositoryService,
  otaMessageHandler,
  otaRoutes,
  type CampaignService,
  type RepositoryService,
} from './modules/ota/index.ts';
import {
  createDeviceService,
  createDeviceStore,
  deviceRoutes,
  fleetRoutes,
  groupRoutes,
  type DeviceService,
} from './modules/devices/index.ts';
import {
  createTelemetryService,
  createTelemetryStore,
  telemetryRoutes,
  type TelemetryService,
} from './modules/telemetry/index.ts';
import {
  auditRoutes,
  createAuditService,
  createAuditStore,
  type AuditService,
} from './modules/audit/index.ts';
import {
  createIamService,
  createIamStore,
  createOidcRelyingParty,
  iamPublicRoutes,
  iamRoutes,
  type IamOptions,
  type IamService,
} from './modules/iam/index.ts';
import {
  createPolicyService,
  createPolicyStore,
  lintPolicy,
  policyRoutes,
  type PolicyService,
} from './modules/policy/index.ts';
import {
  createPostureService,
  createPostureStore,
  findingView,
  postureRoutes,
  tamperMessageHandler,
  type PostureService,
} from './modules/posture/index.ts';
import {
  checkWebhookUrl,
  createWebhookService,
  createWebhookStore,
  fetchSender,
  webhookRoutes,
  type PlatformEvent,
  type WebhookOptions,
  type WebhookService,
} from './modules/webhooks/index.ts';
import { buildHttpApp } from './transport/http/index.ts';
import { createSqlRateLimiter } from './infra/rate-limit/index.ts';
import { createMqttTransport, type MqttTransport } from './transport/mqtt/index.ts';
import {
  commandRoutes,
  createCommandsService,
  createCommandsStore,
  deviceMessageHandler,
} from './modules/commands/index.ts';

export const VERSION = '0.1.0';

export interface AppDeps {
  clock?: Clock;
  ids?: Ids;
  logger: Logger;
  /** PostgreSQL schema to use (tests isolate runs this way). */
  databaseSchema?: string;
  /** IAM timeouts and limits; tests also allow loopback http identity providers here. */
  iam?: Partial<IamOptions>;
  /** Webhook delivery timing; tests also allow http:// loopback receivers here. */
  webhooks?: Partial<WebhookOptions>;
}

export interface App {
  readonly config: Config;
  readonly db: Db;
  readonly http: FastifyInstance;
  readonly mqtt: MqttTransport;
  readonly services: {
    pki: PkiService;
    est: EstService;
    devices: DeviceService;
    telemetry: TelemetryService;
    audit: AuditService;
    iam: IamService;
    policy: PolicyService;
    ota: { repository: RepositoryService; campaigns: CampaignService };
    webhooks: WebhookService;
    posture: PostureService;
  };
  readonly paths: { caFile: string; serverCert: string; serverKey: string; initialTokenFile: string };
  /** Set on the first start only: where the owner's one-time token was written. */
  readonly initialTokenWritten: boolean;
  start(): Promise<{ httpPort: number; mqttPort: number }>;
  close(): Promise<void>;
}

function ensureDir(path: string, mode: number): void {
  mkdirSync(path, { recursive: true, mode });
  chmodSync(path, mode);
}

function sameNames(cert: X509Certificate, hostnames: readonly string[]): boolean {
  const sans = (cert.subjectAltName ?? '').split(', ').map((s) => s.replace(/^(DNS|IP Address):/, ''));
  const want = hostnames.map((h) => (isIP(h) === 6 ? expandIpv6(h) : h));
  const have = sans.map((h) => (isIP(h) === 6 ? expandIpv6(h) : h));
  return want.length === have.length && want.every((h) => have.includes(h));
}

function expandIpv6(ip: string): string {
  return new URL(`http://[${ip}]/`).hostname;
}

export async function buildApp(config: Config, deps: AppDeps): Promise<App> {
  const clock = deps.clock ?? systemClock;
  const ids = deps.ids ?? randomIds;
  const logger = deps.logger;
  const dataDir = config.dataDir;
  ensureDir(dataDir, 0o700);
  ensureDir(join(dataDir, 'secrets'), 0o700);
  ensureDir(join(dataDir, 'tls'), 0o700);
  const paths = {
    caFile: join(dataDir, 'tls', 'ca.crt'),
    serverCert: join(dataDir, 'tls', 'server.crt'),
    serverKey: join(dataDir, 'tls', 'server.key'),
    initialTokenFile: join(dataDir, 'secrets', 'initial-admin-token'),
  };

  const db = await openDatabase({
    url: config.database.url,
    ...(deps.databaseSchema ? { schema: deps.databaseSchema } : {}),
  });
  // Torn down by close() (and when start-up fails) after the transports, before the database.
  const closers: (() => Promise<void>)[] = [];
  try {
    const keys = await createKeyProtector(
      config.secrets.masterKey
        ? { base64: config.secrets.masterKey }
        : { file: join(dataDir, 'secrets', 'master.key') },
    );
    const auditLog = createAuditService({ store: createAuditStore(db), clock, logger });
    // Administrative actions in the audit log are also events for webhook subscribers.
    const webhooksRef: { current?: WebhookService } = {};
    const offerEvent = (e: PlatformEvent | undefined) => {
      if (!e || !webhooksRef.current) return;
      void webhooksRef.current
        .publish(e)
        .catch((err: unknown) => logger.warn({ err: String(err), type: e.type }, 'webhook event not queued'));
    };
    // A policy written or deleted: its lint findings become posture findings (set once posture exists).
    const policyWrittenRef: { current?: (entry: Parameters<typeof auditLog.record>[0]) => void } = {};
    const audit: typeof auditLog = {
      ...auditLog,
      async record(entry) {
        await auditLog.record(entry);
        offerEvent(webhooksRef.current?.fromAudit(entry));
        policyWrittenRef.current?.(entry);
      },
      recordLater(entry) {
        auditLog.recordLater(entry);
        offerEvent(webhooksRef.current?.fromAudit(entry));
        policyWrittenRef.current?.(entry);
      },
    };
    const iamStore = createIamStore(db);
    // Custom roles live in iam; the policy engine asks for them by name (late-bound: iam needs policy).
    const late: { iam?: IamService } = {};
    // Capability fields (`cap.*`) of each device's latest report are group-query and policy input.
    const capabilityStore = createCommandsStore(db);
    const devices = createDeviceService({
      store: createDeviceStore(db),
      clock,
      capabilities: async (t, deviceIds) => {
        const out = new Map<string, Readonly<Record<string, string>>>();
        for (const [id, json] of await capabilityStore.latestCapabilitiesOf(t, [...deviceIds]))
          out.set(id, capabilityFields(JSON.parse(json) as Record<string, unknown>));
        return out;
      },
    });
    const placementOf = (
      tenant: string,
      p: {
        device: { id: string; fleet: string; attributes: Readonly<Record<string, string>> };
        groups: string[];
        capabilities: Readonly<Record<string, string>>;
      },
    ) => ({
      id: p.device.id,
      fleet: p.device.fleet,
      groups: p.groups,
      attributes: p.device.attributes,
      capabilities: p.capabilities,
    });
    const policy = createPolicyService({
      store: createPolicyStore(db),
      clock,
      logger: logger.child({ component: 'policy' }),
      platformTenant: config.tenant,
      nodeId: ids.uuid(),
      roles: {
        document: (t, name) => late.iam?.roleDirectory.document(t, name),
        revision: () => late.iam?.roleDirectory.revision() ?? 0,
      },
      directory: {
        async device(tenant, id) {
          const p = await devices.placement(tenant, id);
          return p && placementOf(tenant, p);
        },
        async devicesIn(tenant, target, page) {
          const scope =
            target.type === 'fleet'
              ? { fleet: target.id, subtree: true }
              : target.type === 'group'
                ? { group: target.id }
                : {};
          if (target.type === 'device') {
            const p = await devices.placement(tenant, target.id);
            return p && (page.after === undefined || p.device.id > page.after)
              ? [placementOf(tenant, p)]
              : [];
          }
          const rows = await devices.scan(tenant, {
            limit: page.limit,
            ...(page.after ? { afterId: page.after } : {}),
            ...scope,
          });
          return rows.map((p) => placementOf(tenant, p));
        },
        async targetExists(tenant, type, id) {
          if (type === 'device') return (await devices.find(tenant, id)) !== undefined;
          if (type === 'fleet')
            return devices.getFleet(tenant, id).then(
              () => true,
              () => false,
            );
          return devices.getGroup(tenant, id).then(
            () => true,
            () => false,
          );
        },
        async account(tenant, id) {
          const a = await iamStore.getAccount(id);
          return a && a.tenant === tenant
            ? { kind: a.kind, role: a.role, boundaries: late.iam?.roleDirectory.boundaries(a) ?? [] }
            : undefined;
        },
        async accounts(tenant) {
          const all = await Promise.all(
            (['user', 'service'] as const).map((kind) => iamStore.listAccounts(tenant, kind)),
          );
          return all.flat().map((a) => ({
            id: a.id,
            kind: a.kind,
            role: a.role,
            boundaries: late.iam?.roleDirectory.boundaries(a) ?? [],
          }));
        },
      },
    });
    await policy.load();
    const iam = createIamService({
      store: iamStore,
      clock,
      ids,
      policy,
      audit,
      sealer: keys,
      oidc: createOidcRelyingParty({
        now: () => clock.now(),
        allowInsecure: deps.iam?.allowInsecureIdp === true,
      }),
      ...(deps.iam ? { options: deps.iam } : {}),
    });
    late.iam = iam;
    await iam.load();
    // Other nodes' custom roles (shared PostgreSQL).
    const rolesTimer =
      db.dialect === 'postgres'
        ? setInterval(() => {
            void iam
              .refreshRoles()
              .catch((err: unknown) => logger.warn({ err: String(err) }, 'role refresh failed'));
          }, 5_000)
        : undefined;
    rolesTimer?.unref();
    // Sign-in, token, enrollment and SSO limits in the database: every node shares the buckets.
    const rateLimiter = createSqlRateLimiter(db, {
      clock,
      onSweepError: (err) => logger.warn({ err: String(err) }, 'rate-limit sweep failed'),
    });
    const webhooks = createWebhookService({
      store: createWebhookStore(db),
      clock,
      ids,
      policy,
      iam,
      sealer: keys,
      sender: fetchSender,
      logger: logger.child({ component: 'webhooks' }),
      checkUrl: checkWebhookUrl,
      record: (e) => auditLog.record(e),
      ...(deps.webhooks ? { options: deps.webhooks } : {}),
    });
    await webhooks.load();
    webhooksRef.current = webhooks;
    // Security posture: findings from capability reports, policy lint and tamper reports. Each new (or
    // reopened) finding is a posture.finding event for the subscribers allowed to read it: posture:read,
    // and for a finding about a device, the device's fleet.
    const posture = createPostureService({
      store: createPostureStore(db),
      clock,
      ids,
      opened(f) {
        const { id, ...view } = findingView(f);
        (f.deviceId ? devices.placement(f.tenant, f.deviceId) : Promise.resolve(undefined))
          .then((placement) => {
            const fleet = placement?.device.fleet;
            offerEvent({
              type: 'posture.finding',
              tenant: f.tenant,
              action: 'posture:read',
              resource: `bulwark:${f.tenant}:posture/${id}`,
              ...(fleet ? { resourceFleet: fleet } : {}),
              data: { findingId: id, ...view },
            });
          })
          .catch((err: unknown) =>
            logger.warn({ err: String(err), finding: id }, 'posture event not offered'),
          );
      },
    });
    policyWrittenRef.current = (entry) => {
      if (entry.outcome !== 'success' || !entry.tenant || entry.target?.type !== 'policy') return;
      if (!['policy.create', 'policy.update', 'policy.delete'].includes(entry.action)) return;
      const { tenant } = entry;
      const id = entry.target.id;
      let lint: ReturnType<typeof lintPolicy> | null = null;
      if (entry.action !== 'policy.delete') {
        try {
          lint = lintPolicy(policy.get(tenant, id).document);
        } catch {
          return; // deleted meanwhile: the deletion's own entry follows
        }
      }
      posture
        .policyWritten(tenant, id, lint)
        .catch((err: unknown) =>
          logger.warn({ err: String(err), policy: id }, 'policy posture not recorded'),
        );
    };
    const offPostureDevices = devices.onEvent((e) => {
      if (e.type !== 'deleted') return;
      posture
        .deviceDeleted(e.tenant, e.deviceId)
        .catch((err: unknown) =>
          logger.warn({ err: String(err), deviceId: e.deviceId }, 'posture cleanup failed'),
        );
    });
    const deviceEvent = (type: 'device.connected' | 'device.disconnected', t: string, deviceId: string) =>
      offerEvent({
        type,
        tenant: t,
        action: 'devices:read',
        resource: `bulwark:${t}:device/${deviceId}`,
        data: { deviceId },
      });
    // Placement (fleet, groups, attributes) is policy input: every change reaches live sessions.
    const offPlacement = devices.onEvent((e) => {
      if (e.type !== 'placement') return;
      void policy
        .notify({
          tenant: e.tenant,
          scope: e.deviceIds
            ? { kind: 'devices', ids: e.deviceIds }
            : e.group
              ? { kind: 'group', name: e.group }
              : { kind: 'all' },
          reason: e.reason,
          placementChanged: true,
        })
        .catch((err: unknown) => logger.error({ err: String(err) }, 'policy change notification failed'));
    });
    // Several nodes on one PostgreSQL: replay the others' policy changes (well within a second).
    const syncTimer =
      db.dialect === 'postgres'
        ? setInterval(() => {
            void policy
              .sync()
              .catch((err: unknown) => logger.warn({ err: String(err) }, 'policy sync failed'));
          }, 250)
        : undefined;
    syncTimer?.unref();
    const telemetry = createTelemetryService({
      store: createTelemetryStore(db),
      clock,
      options: config.telemetry,
    });
    // Revocations and CA changes reach the other nodes through LISTEN/NOTIFY (PostgreSQL) within a second.
    const cluster =
      db.dialect === 'postgres'
        ? await createPostgresClusterEvents({
            url: config.database.url,
            ...(deps.databaseSchema ? { schema: deps.databaseSchema } : {}),
            logger,
          })
        : createLocalClusterEvents(undefined, logger);
    closers.push(() => cluster.close());
    // A custom role changed here: the other nodes reload roles at once (the 5 s poll is the safety net),
    // so holders get the new permissions on their next request whichever node answers it.
    const offRolesOut = iam.onRolesChanged(() => {
      cluster
        .publish('iam', { type: 'roles' })
        .catch((err: unknown) => logger.warn({ err: String(err) }, 'role change not announced'));
    });
    const offRolesIn = cluster.subscribe('iam', () => {
      iam.refreshRoles().catch((err: unknown) => logger.warn({ err: String(err) }, 'role refresh failed'));
    });
    closers.unshift(async () => {
      offRolesOut();
      offRolesIn();
    });
    const crlHost = config.hostnames[0] ?? 'localhost';
    const publicBase = `https://${isIP(crlHost) === 6 ? `[${crlHost}]` : crlHost}:${config.http.port}`;
    const pki = createPkiService({
      store: createPkiStore(db),
      clock,
      ids,
      keys,
      logger,
      crlBaseUrl: `${publicBase}/pki/crl`,
      ocspUrl: `${publicBase}/pki/ocsp`,
      cluster,
    });
    await pki.load();

    const tenant = config.tenant;
    if (await iam.ensureTenant(tenant)) {
      await audit.record({
        tenant,
        actor: { type: 'system', id: 'bootstrap' },
        action: 'tenant.create',
        target: { type: 'tenant', id: tenant },
        outcome: 'success',
      });
    }
    await pki.ensureHierarchy(tenant);

    // The server's own certificate: reissued when the host names change or it nears expiry.
    let serverCertPem = existsSync(paths.serverCert) ? readFileSync(paths.serverCert, 'utf8') : undefined;
    let serverKeyPem = existsSync(paths.serverKey) ? readFileSync(paths.serverKey, 'utf8') : undefined;
    const current = serverCertPem ? new X509Certificate(serverCertPem) : undefined;
    if (
      !current ||
      !serverKeyPem ||
      !sameNames(current, config.hostnames) ||
      Date.parse(current.validTo) - clock.now() < 30 * 86_400_000
    ) {
      const issued = await pki.issueServerCertificate([...config.hostnames]);
      serverCertPem = issued.chainPem;
      serverKeyPem = issued.keyPem;
      writeFileSync(paths.serverKey, serverKeyPem, { mode: 0o600 });
      chmodSync(paths.serverKey, 0o600);
      writeFileSync(paths.serverCert, serverCertPem, { mode: 0o644 });
      await audit.record({
        tenant: null,
        actor: { type: 'system', id: 'bootstrap' },
        action: 'cert.issue-server',
        target: { type: 'certificate', id: issued.serial },
        outcome: 'success',
        details: { hostnames: config.hostnames },
      });
    }
    if (!serverCertPem || !serverKeyPem) throw new Error('server certificate missing');
    const tlsCert = serverCertPem;
    const tlsKey = serverKeyPem;
    const rootPem = await pki.rootCaPem();
    writeFileSync(paths.caFile, rootPem, { mode: 0o644 });

    let initialTokenWritten = false;
    const owner = await iam.bootstrapOwner(tenant);
    if (owner) {
      // 'wx': never overwrite, never exist with wider permissions than 0600.
      writeFileSync(paths.initialTokenFile, `${owner.token}\n`, { mode: 0o600, flag: 'wx' });
      initialTokenWritten = true;
      await audit.record({
        tenant,
        actor: { type: 'system', id: 'bootstrap' },
        action: 'account.create-owner',
        target: { type: 'account', id: owner.account.id },
        outcome: 'success',
      });
    }

    // MQTT sessions and retained messages live in the database, so they survive restarts and are shared
    // by the nodes of a cluster; each node restores the sessions it held (its id is kept in the data dir).
    const nodeIdFile = join(dataDir, 'node-id');
    if (!existsSync(nodeIdFile)) writeFileSync(nodeIdFile, `${ids.uuid()}\n`, { mode: 0o644, flag: 'wx' });
    const nodeId = readFileSync(nodeIdFile, 'utf8').trim();
    const mqttSessions = createSqlSessionStore(db, { node: nodeId, clock });
    // Scale-out: nodes forward messages to each other for the topics their clients subscribe to.
    const router = config.cluster.natsUrl
      ? createNatsRouter({
          url: config.cluster.natsUrl,
          node: nodeId,
          logger: logger.child({ component: 'cluster' }),
        })
      : undefined;
    await router?.start();
    // Commands, twin and capabilities reach devices through the broker, over the connections devices opened.
    const commands = createCommandsService({
      store: capabilityStore,
      clock,
      ids,
      logger: logger.child({ component: 'commands' }),
      publish: (m) => mqtt.broker.publish(m),
      isConnected: (t, id) => mqtt.isConnected(t, id),
      deviceExists: async (t, id) => void (await devices.get(t, id)),
      // A new capability version: dynamic groups re-evaluated, the device's live policy recompiled, and
      // what it shows about the device's security (listening ports, weak or missing capabilities).
      capabilitiesStored: async (t, id, _version, report) => {
        await Promise.all([devices.capabilitiesChanged(t, id), posture.capabilitiesReported(t, id, report)]);
      },
    });
    const offCommandDevices = devices.onEvent((e) => {
      if (e.type !== 'deleted') return;
      commands
        .deviceDeleted(e.tenant, e.deviceId)
        .catch((err: unknown) =>
          logger.warn({ err: String(err), deviceId: e.deviceId }, 'twin cleanup failed'),
        );
    });
    // Safe remote updates: releases and the TUF repository (artifacts under <dataDir>/blobs), campaigns
    // whose notices reach devices over their own MQTT sessions (retained per device).
    const otaStore = createOtaStore(db);
    const repository = createRepositoryService({
      store: otaStore,
      blobs: createFsBlobStore(join(dataDir, 'blobs')),
      keys,
      clock,
      audit,
      logger: logger.child({ component: 'ota' }),
      options: {
        maxArtifactBytes: config.ota.maxArtifactBytes,
        signing: config.ota.signing,
        targetsExpiryDays: config.ota.targetsExpiryDays,
        timestampExpirySeconds: config.ota.timestampExpirySeconds,
      },
    });
    const campaigns = createCampaignService({
      store: otaStore,
      repository,
      devices,
      audit,
      clock,
      logger: logger.child({ component: 'campaigns' }),
      publish: (m) => mqtt.broker.publish(m),
      capabilities: (t, deviceIds) => capabilityStore.latestCapabilitiesOf(t, deviceIds),
    });
    const commandMessages = deviceMessageHandler(commands, (err, deviceId) =>
      logger.warn({ err: String(err), deviceId }, 'retained desired state not published'),
    );
    const otaMessages = otaMessageHandler(campaigns);
    const tamperMessages = tamperMessageHandler(posture);
    // Campaign steps that depend on time (rate limit, windows, timeouts) and timestamp re-signing.
    const campaignTimer = setInterval(() => {
      void campaigns
        .tick()
        .catch((err: unknown) => logger.error({ err: String(err) }, 'campaign tick failed'));
    }, 1000);
    campaignTimer.unref();
    const tufTimer = setInterval(() => {
      void repository
        .refresh()
        .catch((err: unknown) => logger.error({ err: String(err) }, 'TUF refresh failed'));
    }, 60_000);
    tufTimer.unref();
    closers.push(async () => {
      clearInterval(campaignTimer);
      clearInterval(tufTimer);
    });
    const mqtt = createMqttTransport({
      ports: {
        sessions: mqttSessions,
        retained: createSqlRetainedStore(db, { clock }),
        ...(router ? { router } : {}),
      },
      pki,
      devices,
      policy,
      telemetry,
      audit,
      logger: logger.child({ component: 'mqtt' }),
      deviceEvents: {
        connected: (t, id) => deviceEvent('device.connected', t, id),
        disconnected: (t, id) => deviceEvent('device.disconnected', t, id),
        telemetry(t, deviceId, stream, payload) {
          let data: unknown;
          try {
            data = JSON.parse(payload.toString('utf8'));
          } catch {
            return;
          }
          offerEvent({
            type: 'telemetry',
            tenant: t,
            action: 'telemetry:read',
            resource: `bulwark:${t}:device/${deviceId}`,
            data: { deviceId, stream: stream ?? '', data },
          });
        },
      },
      deviceMessages: {
        async handle(t, deviceId, topic, payload) {
          const handled = await otaMessages.handle(t, deviceId, topic, payload);
          if (handled !== false) return handled;
          const tamper = await tamperMessages.handle(t, deviceId, topic, payload);
          return tamper === false ? commandMessages.handle(t, deviceId, topic, payload) : tamper;
        },
        connected(t, deviceId) {
          commandMessages.connected(t, deviceId);
          otaMessages.connected(t, deviceId);
        },
      },
      tls: {
        key: tlsKey,
        cert: tlsCert,
        ca: await pki.trustAnchorsPem(),
        minVersion: config.mqtt.tlsMinVersion,
      },
      limits: { maxPacketSize: config.mqtt.maxPacketSize, keepAliveMax: config.mqtt.keepAliveMax },
    });
    const est = createEstService({
      store: createEstStore(db),
      pki,
      devices,
      audit,
      clock,
      ids,
      logger,
      defaults: { certDays: config.pki.deviceCertDays, graceSeconds: 3600 },
      limiter: rateLimiter,
    });
    // Renewed certificates are revoked when their grace period ends; every node sweeps (idempotent).
    const estTimer = setInterval(() => {
      void est.sweep().catch((err: unknown) => logger.error({ err: String(err) }, 'EST sweep failed'));
    }, 30_000);
    estTimer.unref();
    // Safety net for cluster events lost while a node was partitioned from the bus.
    const pkiTimer = setInterval(() => {
      void pki.load().catch((err: unknown) => logger.warn({ err: String(err) }, 'PKI reload failed'));
    }, 300_000);
    pkiTimer.unref();
    closers.push(async () => {
      clearInterval(estTimer);
      clearInterval(pkiTimer);
    });
    const offAnchors = pki.onTrustAnchorsChanged(() => {
      void pki.trustAnchorsPem().then((ca) => mqtt.setTrustAnchors(ca));
    });

    // Overload made visible: broker back-pressure and queues, telemetry queue depth (GET /api/v1/metrics).
    const metrics = createMetricsService({
      broker: () => mqtt.broker.metrics,
      telemetry: () => ({ pending: telemetry.pending, capacity: config.telemetry.queueMax }),
      cluster: () => router?.stats,
      process: () => {
        const m = process.memoryUsage();
        return {
          residentBytes: m.rss,
          heapUsedBytes: m.heapUsed,
          uptimeSeconds: Math.round(process.uptime()),
        };
      },
    });

    let ready = false;
    const http = await buildHttpApp({
      deviceFleet: async (t, id) => {
        const fleet = (await devices.placement(t, id))?.device.fleet;
        return fleet ? fleet : undefined;
      },
      routes: [
        ...iamRoutes({ iam, platformTenant: config.tenant }),
        ...metricsRoutes({ metrics, platformTenant: config.tenant }),
        ...deviceRoutes({
          devices,
          pki,
          audit,
          isConnected: (t, id) => mqtt.isConnected(t, id),
          deviceCertDays: config.pki.deviceCertDays,
        }),
        ...telemetryRoutes({ telemetry, deviceExists: async (t, id) => void (await devices.get(t, id)) }),
        ...commandRoutes({ commands, audit }),
        ...otaRoutes({ repository, campaigns }),
        ...auditRoutes({ audit, platformTenant: config.tenant }),
        ...webhookRoutes({ webhooks }),
        ...postureRoutes({
          posture,
          audit,
          deviceFleet: async (t, id) => (await devices.placement(t, id))?.device.fleet || undefined,
        }),
        ...pkiRoutes({
          pki,
          audit,
          now: () => clock.now(),
          requireFleet: async (t, fleet) =>
            void (fleet === '' ? undefined : await devices.getFleet(t, fleet)),
        }),
        ...estRoutes({ est, audit, now: () => clock.now() }),
        ...policyRoutes({ policy, audit }),
        ...fleetRoutes({
          devices,
          audit,
          attachedPolicies: (t, type, id) => policy.attachments(t, { type, id }).map((a) => a.policyId),
        }),
        ...groupRoutes({
          devices,
          audit,
          attachedPolicies: (t, type, id) => policy.attachments(t, { type, id }).map((a) => a.policyId),
        }),
      ],
      extra: async (app) => {
        // CRLs are public by design (RFC 5280 §4.2.1.13): relying parties fetch them without credentials.
        app.get<{ Params: { file: string } }>(
          '/pki/crl/:file',
          { schema: { hide: true } },
          async (req, reply) => {
            const m = /^([a-z0-9][a-z0-9-]{0,62})\.crl$/.exec(req.params.file);
            if (!m?.[1]) return reply.status(404).send();
            const der = await pki.crlDer(m[1]);
            return reply.header('content-type', 'application/pkix-crl').send(Buffer.from(der));
          },
        );
        // EST (RFC 7030) under /.well-known/est and OCSP (RFC 6960) at /pki/ocsp: device-facing, no tokens.
        await registerPkiEndpoints(app, { est, pki, defaultTenant: config.tenant, logger });
        // The TUF repository for devices: /ota/<tenant>/metadata/... and /ota/<tenant>/targets/... (mTLS).
        await registerOtaEndpoints(app, { repository, pki, devices, policy, audit, logger });
      },
      publicRoutes: iamPublicRoutes({ iam, platformTenant: config.tenant }),
      clock,
      rateLimiter,
      iam,
      policy,
      audit,
      logger: logger.child({ component: 'http' }),
      bodyLimit: config.http.bodyLimit,
      https: { key: tlsKey, cert: tlsCert },
      ready: () => ready,
      version: VERSION,
    });

    // MQTT over WebSocket at wss://…/mqtt, on the HTTPS listener.
    http.server.on('upgrade', (req, socket, head) => mqtt.handleUpgrade(req, socket, head));

    let closed = false;
    return {
      config,
      db,
      http,
      mqtt,
      services: {
        pki,
        est,
        devices,
        telemetry,
        audit,
        iam,
        policy,
        ota: { repository, campaigns },
        webhooks,
        posture,
      },
      paths,
      initialTokenWritten,
      async start() {
        await http.listen({ port: config.http.port, host: config.http.host });
        webhooks.start();
        const addr = http.server.address();
        const httpPort = typeof addr === 'object' && addr ? addr.port : config.http.port;
        const mqttPort = await mqtt.listen(config.mqtt.port, config.mqtt.host);
        ready = true;
        return { httpPort, mqttPort };
      },
      async close() {
        if (closed) return;
        closed = true;
        ready = false;
        offAnchors();
        offPlacement();
        offPostureDevices();
        if (syncTimer) clearInterval(syncTimer);
        if (rolesTimer) clearInterval(rolesTimer);
        offCommandDevices();
        commands.close();
        campaigns.close();
        await campaigns.idle();
        webhooks.stop();
        await mqtt.close();
        await mqttSessions.close?.();
        await http.close();
        await telemetry.flush();
        await audit.flush();
        for (const c of closers.splice(0)) await c();
        await db.close();
      },
    };
  } catch (err) {
    for (const c of closers.splice(0)) await c().catch(() => {});
    await db.close().catch(() => {});
    throw err;
  }
}
