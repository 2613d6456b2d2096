import { createServer, type Server, type TLSSocket } from 'node:tls';
import { randomBytes, type X509Certificate } from 'node:crypto';
import {
  createBroker,
  type Broker,
  type ClientHandle,
  type ClusterRouter,
  type RetainedStore,
  type SessionStore,
  type TransportInfo,
} from '@bulwark/broker';
import type { IPublishPacket } from 'mqtt-packet';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { parseDeviceTopic, parseDeviceUri, mqttReasonByKind, type ErrorKind } from '@bulwark/protocol';
import { isAppError, type Logger } from '../../kernel/index.ts';
import type { PkiService, ClientIdentity } from '../../modules/pki/index.ts';
import type { DeviceService } from '../../modules/devices/index.ts';
import type { TelemetryService } from '../../modules/telemetry/index.ts';
import type { AuditService } from '../../modules/audit/index.ts';
import type { DeviceMessageHandler } from '../../modules/commands/index.ts';
import { createMqttWebSocket } from './websocket.ts';
import { createLivePolicies, type LivePolicies, type LiveSession } from './live-policy.ts';
import {
  resourceName,
  type AuthorizeContext,
  type PolicyService,
  type Principal,
} from '../../modules/policy/index.ts';

// MQTT 5 reason codes used here (MQTT 5.0 §2.4).
const RC = {
  unspecified: 0x80,
  clientIdNotValid: 0x85,
  badCredentials: 0x86,
  notAuthorized: 0x87,
  serverBusy: 0x89,
  administrativeAction: 0x98,
} as const;

// A PUBACK may carry only these error codes [MQTT-3.4.2.1]; a DISCONNECT (how a QoS 0 publish is
// refused) takes the kind's own code, but never 0x86.
const PUBACK_ERRORS = new Set([0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99]);
function refusalCode(kind: ErrorKind, qos: number): number {
  if (kind === 'unauthenticated') return RC.notAuthorized;
  const code = mqttReasonByKind[kind];
  if (qos === 0 || PUBACK_ERRORS.has(code)) return code;
  return kind === 'rate_limited' ? 0x97 : 0x83; // quota exceeded; implementation specific error
}

/**
 * What the broker knows about a connected device: set at CONNECT, used on every message. The compiled
 * policy is replaced when a policy, the device's fleet, groups or attributes change.
 */
export interface DeviceSession extends LiveSession {
  readonly tenant: string;
  readonly deviceId: string;
  readonly serial: string;
  readonly fingerprint256: string;
  /** The issuing CA of the session's certificate: revoking it drops the session. */
  readonly caId: string;
}

interface Transport extends TransportInfo {
  identity?: ClientIdentity;
  claimed?: { tenant: string; deviceId: string };
  identityError?: { code: string; message: string };
}

export interface MqttTransportDeps {
  pki: PkiService;
  devices: DeviceService;
  policy: PolicyService;
  telemetry: TelemetryService;
  audit: AuditService;
  logger: Logger;
  tls: { key: string; cert: string; ca: string; minVersion: 'TLSv1.2' | 'TLSv1.3' };
  limits: { maxPacketSize: number; keepAliveMax: number };
  /** Device publishes on command result, twin and capability topics (commands module). */
  deviceMessages?: DeviceMessageHandler;
  /** Told after the fact (webhooks): a device connected, disconnected, or had telemetry committed. */
  deviceEvents?: {
    connected(tenant: string, deviceId: string): void;
    disconnected(tenant: string, deviceId: string): void;
    telemetry(tenant: string, deviceId: string, stream: string | undefined, payload: Buffer): void;
  };
  /** Broker ports (default: in memory, one node): sessions and retained messages, cluster routing. */
  ports?: { sessions?: SessionStore; retained?: RetainedStore; router?: ClusterRouter };
}

export interface MqttTransport {
  readonly broker: Broker<DeviceSession>;
  readonly server: Server;
  listen(port: number, host: string): Promise<number>;
  isConnected(tenant: string, deviceId: string): boolean;
  /** Drops every live session of a device (revocation, disable, delete). */
  disconnectDevice(tenant: string, deviceId: string, reason: string, serial?: string): number;
  /** Reloads the trusted CA bundle (a CA was added or retired) without dropping connections. */
  setTrustAnchors(ca: string): void;
  /** MQTT over WebSocket: the HTTPS server's 'upgrade' event, for `/mqtt` (same certificate checks). */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void;
  close(): Promise<void>;
}

function claimedIdentity(cert: X509Certificate): { tenant: string; deviceId: string } | undefined {
  for (const san of (cert.subjectAltName ?? '').split(', ')) {
    if (san.startsWith('URI:')) {
      const id = parseDeviceUri(san.slice(4));
      if (id) return { tenant: id.tenant, deviceId: id.deviceId };
    }
  }
  return undefined;
}

export function createMqttTransport(deps: MqttTransportDeps): MqttTransport {
  const { pki, devices, policy, telemetry, audit, logger } = deps;
  // Sessions by tenant/device: the MQTT client id is the device id, so one live session per device.
  const key = (tenant: string, id: string) => `${tenant}\u0000${id}`;
  const live = new Map<string, ClientHandle<DeviceSession>>();

  const refused = (
    t: Transport,
    action: string,
    reason: string,
    extra: { tenant?: string | null; deviceId?: string; topic?: string } = {},
  ) => {
    audit.recordLater({
      tenant: extra.tenant ?? t.identity?.tenantId ?? null,
      actor:
        (extra.deviceId ?? t.identity?.deviceId)
          ? { type: 'device', id: (extra.deviceId ?? t.identity?.deviceId) as string }
          : { type: 'anonymous', id: t.remoteAddress ?? 'unknown' },
      action,
      ...(extra.topic ? { target: { type: 'topic', id: extra.topic } } : {}),
      outcome: 'denied',
      reason,
      ...(t.remoteAddress ? { source: t.remoteAddress } : {}),
    });
  };

  // Live policy: a change marks the sessions it concerns, so a tightened rule decides their next
  // message; a sweep then recompiles the idle ones and removes subscriptions no longer allowed.
  const livePolicies: LivePolicies<DeviceSession> = createLivePolicies<DeviceSession>({
    policy,
    async placement(tenant, deviceId) {
      const placed = await devices.placement(tenant, deviceId);
      if (!placed) return undefined;
      return {
        type: 'device',
        id: deviceId,
        tenant,
        attributes: placed.device.attributes,
        capabilities: placed.capabilities,
        fleet: placed.device.fleet,
        groups: placed.groups,
      };
    },
    subscriptions: (s): string[] => broker.subscriptionsOf(s.deviceId).map((sub) => sub.filter),
    unsubscribe(s, filters, reason) {
      const c = live.get(key(s.tenant, s.deviceId));
      if (c?.principal !== s) return;
      for (const filter of broker.removeSubscriptions(s.deviceId, filters))
        refused(c.transport as Transport, 'mqtt.subscribe', `subscription removed: ${reason}`, {
          topic: filter,
        });
    },
    revoke(s, reason) {
      const c = live.get(key(s.tenant, s.deviceId));
      if (c?.principal !== s) return;
      refused(c.transport as Transport, 'mqtt.connect', reason);
      disconnectDevice(s.tenant, s.deviceId, 'policy no longer allows this connection');
    },
    failed(s, err) {
      // Fail closed: a session whose policy cannot be brought up to date does not keep the old one.
      logger.error({ err: String(err), deviceId: s.deviceId }, 'policy recompile failed');
      disconnectDevice(s.tenant, s.deviceId, 'policy update failed');
    },
  });

  const broker: Broker<DeviceSession> = createBroker<DeviceSession>({
    // Clients such as MQTT.js do not honour a small server Receive Maximum, so a generous one is
    // advertised (only a v5 client exceeding it is disconnected) and the broker stops reading a socket
    // once maxPendingInbound publishes await their commit: memory stays bounded without disconnects.
    // 256 per device keeps a fast device's group commits full (telemetry batches are 512 across devices).
    limits: {
      maxPacketSize: deps.limits.maxPacketSize,
      keepAliveMax: deps.limits.keepAliveMax,
      receiveMaximum: 65535,
      maxPendingInbound: 256,
    },
    ...deps.ports,
    logger,
    hooks: {
      async authenticate({ connect, transport }) {
        const t = transport as Transport;
        if (!t.identity) {
          const reason = t.identityError?.message ?? 'no client certificate';
          refused(t, 'mqtt.connect', reason);
          return { ok: false, reasonCode: RC.badCredentials, reasonString: reason };
        }
        const { tenantId, deviceId } = t.identity;
        // The certificate, not the client id, is who the device is; the client id must agree with it.
        if (connect.clientId !== deviceId) {
          const reason = `client id ${JSON.stringify(connect.clientId)} does not match the certificate's device ${deviceId}`;
          refused(t, 'mqtt.connect', reason);
          return {
            ok: false,
            reasonCode: RC.clientIdNotValid,
            reasonString: 'client id must equal the device id in the certificate',
          };
        }
        const placed = await devices.placement(tenantId, deviceId);
        const device = placed?.device;
        if (!placed || !device || device.status !== 'active') {
          const reason = device ? 'device disabled' : 'device not registered';
          refused(t, 'mqtt.connect', reason);
          return { ok: false, reasonCode: RC.notAuthorized, reasonString: reason };
        }
        const subject: Principal = {
          type: 'device',
          id: deviceId,
          tenant: tenantId,
          attributes: device.attributes,
          capabilities: placed.capabilities,
          fleet: device.fleet,
          groups: placed.groups,
        };
        const context: AuthorizeContext = {
          sourceIp: t.remoteAddress ?? '',
          cert: { serial: t.identity.serial, fingerprint256: t.identity.fingerprint256 },
        };
        const compiled = policy.compileFor(subject, { context });
        if (!compiled.allows('mqtt:connect', resourceName(tenantId, 'client', connect.clientId))) {
          refused(t, 'mqtt.connect', 'policy denies mqtt:connect');
          return { ok: false, reasonCode: RC.notAuthorized, reasonString: 'not authorized' };
        }
        return {
          ok: true,
          principal: {
            tenant: tenantId,
            deviceId,
            serial: t.identity.serial,
            fingerprint256: t.identity.fingerprint256,
            caId: t.identity.caId,
            policy: compiled,
            subject,
            context,
            stale: false,
            placementGeneration: 0,
          },
        };
      },
      authorizePublish(client, packet: IPublishPacket) {
        const s = client.principal;
        if (livePolicies.current(s).allows('mqtt:publish', resourceName(s.tenant, 'topic', packet.topic)))
          return true;
        refused(client.transport as Transport, 'mqtt.publish', 'policy denies mqtt:publish', {
          topic: packet.topic,
        });
        return {
          ok: false,
          reasonCode: RC.notAuthorized,
          reasonString: `not authorized to publish to ${packet.topic}`,
        };
      },
      authorizeSubscribe(client, filter) {
        const s = client.principal;
        if (livePolicies.current(s).allows('mqtt:subscribe', resourceName(s.tenant, 'topic', filter)))
          return true;
        refused(client.transport as Transport, 'mqtt.subscribe', 'policy denies mqtt:subscribe', {
          topic: filter,
        });
        return {
          ok: false,
          reasonCode: RC.notAuthorized,
          reasonString: `not authorized to subscribe to ${filter}`,
        };
      },
      authorizeDelivery(client, topic) {
        const s = client.principal;
        return livePolicies.current(s).allows('mqtt:receive', resourceName(s.tenant, 'topic', topic));
      },
      async onPublish(client, packet) {
        const s = client.principal;
        const parsed = parseDeviceTopic(packet.topic);
        if (parsed && parsed.kind !== 'telemetry' && parsed.deviceId === s.deviceId && deps.deviceMessages) {
          try {
            const handled = await deps.deviceMessages.handle(
              s.tenant,
              s.deviceId,
              packet.topic,
              packet.payload as Buffer,
            );
            return handled === false ? undefined : handled;
          } catch (err) {
            const e = isAppError(err) ? err : undefined;
            if (!e) logger.error({ err: String(err), deviceId: s.deviceId }, 'device message failed');
            if (e && e.kind !== 'unavailable') {
              refused(client.transport as Transport, 'mqtt.message', `${e.code}: ${e.message}`, {
                topic: packet.topic,
              });
            }
            throw Object.assign(e ?? new Error('not processed'), {
              mqttReasonCode: e ? refusalCode(e.kind, packet.qos) : RC.unspecified,
              mqttReasonString: e ? `${e.code}: ${e.message}` : 'not processed',
            });
          }
        }
        if (parsed?.kind !== 'telemetry' || parsed.deviceId !== s.deviceId) return;
        try {
          await telemetry.ingest(s.tenant, s.deviceId, parsed.stream, packet.payload as Buffer);
          deps.deviceEvents?.telemetry(s.tenant, s.deviceId, parsed.stream, packet.payload as Buffer);
        } catch (err) {
          if (isAppError(err)) {
            if (err.kind !== 'unavailable') {
              refused(client.transport as Transport, 'telemetry.ingest', `${err.code}: ${err.message}`, {
                topic: packet.topic,
              });
            }
            throw Object.assign(err, {
              mqttReasonCode: refusalCode(err.kind, packet.qos),
              mqttReasonString: `${err.code}: ${err.message}`,
            });
          }
          logger.error({ err: String(err), deviceId: s.deviceId }, 'telemetry ingest failed');
          throw Object.assign(new Error('ingest failed'), {
            mqttReasonCode: RC.unspecified,
            mqttReasonString: 'not stored',
          });
        }
      },
      onConnect(client) {
        const s = client.principal;
        live.set(key(s.tenant, s.deviceId), client);
        livePolicies.add(s);
        // A revocation may have happened between the TLS handshake and this point.
        if (pki.isRevoked(s.serial)) client.disconnect(RC.administrativeAction, 'certificate revoked');
        else {
          deps.deviceMessages?.connected(s.tenant, s.deviceId);
          deps.deviceEvents?.connected(s.tenant, s.deviceId);
        }
      },
      onDisconnect(client) {
        const s = client.principal;
        if (!s) return;
        livePolicies.delete(s);
        const k = key(s.tenant, s.deviceId);
        if (live.get(k) === client) {
          live.delete(k);
          deps.deviceEvents?.disconnected(s.tenant, s.deviceId);
        }
      },
    },
  });

  const ticketKeys = randomBytes(48);
  const tlsOptions = (ca: string) => ({
    key: deps.tls.key,
    cert: deps.tls.cert,
    ca,
    requestCert: true,
    rejectUnauthorized: true,
    minVersion: deps.tls.minVersion,
    // Tickets survive a trust-anchor reload; revocation is still enforced on resumed sessions because
    // identifyClient() checks the revocation set on every connection.
    ticketKeys,
    sessionTimeout: 3600,
  });
  const server = createServer(tlsOptions(deps.tls.ca));
  const transportOf = (socket: TLSSocket): Transport => {
    const t: Transport = {
      remoteAddress: socket.remoteAddress ?? 'unknown',
      remotePort: socket.remotePort ?? 0,
    };
    let cert: X509Certificate | undefined;
    try {
      cert = socket.getPeerX509Certificate();
      if (!cert) throw Object.assign(new Error('no client certificate'), { code: 'ERR_PKI_CERT_IDENTITY' });
      t.identity = pki.identifyClient(cert);
    } catch (err) {
      t.identityError = {
        code: (err as { code?: string }).code ?? 'ERR_PKI',
        message: (err as Error).message,
      };
      // The handshake verified the chain to one of our issuing CAs, so the identity the certificate
      // names is the one to attribute the refusal to (revoked, expired, wrong usage...).
      const claimed = cert ? claimedIdentity(cert) : undefined;
      if (claimed) t.claimed = claimed;
    }
    return t;
  };
  server.on('secureConnection', (socket: TLSSocket) => {
    const t = transportOf(socket);
    socket.on('error', () => {});
    broker.handle(socket, t);
  });
  // The HTTPS listener asks for a client certificate without requiring it (API clients use tokens), so
  // here a certificate is mandatory and must pass the same checks: issued (signature) by one of our
  // issuing CAs, valid, not revoked, naming a device. CONNECT then goes through authenticate() as above.
  const webSocket = createMqttWebSocket({
    maxPayload: deps.limits.maxPacketSize,
    admit(socket) {
      const t = transportOf(socket);
      if (!t.identity) {
        const reason = t.identityError?.message ?? 'no client certificate';
        refused(
          t,
          'mqtt.websocket',
          reason,
          t.claimed ? { tenant: t.claimed.tenant, deviceId: t.claimed.deviceId } : {},
        );
        return { ok: false, status: 401, reason: 'a valid device certificate is required' };
      }
      return { ok: true, handle: (stream) => broker.handle(stream, { ...t, websocket: true }) };
    },
  });
  server.on('tlsClientError', (err: Error & { code?: string }, socket: TLSSocket) => {
    // Refused during the handshake: no certificate, unknown CA, expired, bad signature.
    refused(
      { remoteAddress: socket.remoteAddress ?? 'unknown' },
      'mqtt.tls',
      `${err.code ?? 'TLS'}: ${err.message}`,
    );
    socket.destroy();
  });

  const disconnectDevice = (tenant: string, deviceId: string, reason: string, serial?: string) => {
    const c = live.get(key(tenant, deviceId));
    if (!c || (serial !== undefined && c.principal.serial !== serial)) return 0;
    c.disconnect(RC.administrativeAction, reason);
    live.delete(key(tenant, deviceId));
    return 1;
  };
  const offRevoked = pki.onRevoked((e) => {
    if (e.deviceId) disconnectDevice(e.tenantId, e.deviceId, 'certificate revoked', e.serial);
  });
  // A revoked CA takes every session whose certificate it issued with it (on every node: the PKI
  // relays the event from the cluster bus).
  const offCaRevoked = pki.onCaRevoked((e) => {
    for (const [k, c] of live) {
      if (c.principal.caId !== e.caId) continue;
      c.disconnect(RC.administrativeAction, 'issuing CA revoked');
      live.delete(k);
    }
  });
  const offPolicy = policy.onChange((change) => livePolicies.apply(change));
  const offDevices = devices.onEvent((e) => {
    if (e.type === 'disabled' || e.type === 'deleted')
      disconnectDevice(e.tenant, e.deviceId, `device ${e.type}`);
  });

  return {
    broker,
    server,
    async listen(port, host) {
      // Sessions this node held before a restart are live again before devices come back.
      const restored = await broker.restore();
      if (restored > 0) logger.info({ sessions: restored }, 'restored persistent MQTT sessions');
      return new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => {
          server.off('error', reject);
          const addr = server.address();
          resolve(typeof addr === 'object' && addr ? addr.port : port);
        });
      });
    },
    isConnected: (tenant, id) => live.has(key(tenant, id)),
    disconnectDevice,
    setTrustAnchors(ca) {
      server.setSecureContext(tlsOptions(ca));
    },
    handleUpgrade: (req, socket, head) => webSocket.handleUpgrade(req, socket, head),
    async close() {
      offRevoked();
      offCaRevoked();
      offDevices();
      offPolicy();
      // Stop accepting first; the listener's close completes once the broker has closed every session.
      const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
      await broker.close();
      webSocket.close();
      await stopped;
    },
  };
}
