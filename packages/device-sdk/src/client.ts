// The device side of Bulwark: one long-lived MQTT 5 connection that the device opens (mutual TLS, or
// MQTT over secure WebSocket), telemetry through a durable outbox, commands with replies, the twin,
// capability reports and certificate renewal. The device never listens on a port.

import { EventEmitter } from 'node:events';
import { X509Certificate } from 'node:crypto';
import { createSecureContext, type SecureContext, type TLSSocket } from 'node:tls';
import { chmod, mkdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import mqtt, { type IClientOptions, type IClientPublishOptions, type MqttClient } from 'mqtt';
import {
  isValidDeviceId,
  parseDeviceTopic,
  topics,
  type CapabilityReport,
  type TamperReport,
  type CommandRequest,
  type CommandResult,
  type TwinDesiredMessage,
  type TwinReportedMessage,
} from '@bulwark/protocol';
import { backoffDelay, resolveBackoff, type BackoffOptions } from './backoff.ts';

/** Tamper report kinds, as the platform accepts them. */
const TAMPER_KIND = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/;
import { buildCapabilityReport, type CapabilityOptions } from './capabilities.ts';
import { createCsr } from './csr.ts';
import type { Enroller } from './enroller.ts';
import {
  fileKeyStore,
  KEY_TYPES,
  replaceFile,
  type DeviceKey,
  type KeyStore,
  type KeyType,
} from './key-store.ts';
import {
  fileOutbox,
  memoryOutbox,
  OutboxFullError,
  type Outbox,
  type OutboxEntry,
  type OutboxOptions,
} from './outbox.ts';

export interface DeviceOptions {
  deviceId: string;
  /** `mqtts://host:8883` (MQTT over TLS) or `wss://host:8443/mqtt` (MQTT over secure WebSocket). */
  url: string;
  /** Holds the key (default key store), certificate, CA and the outbox. Created with mode 0700. */
  stateDir: string;
  /** PEM CA that signed the platform's server certificate. Default: `<stateDir>/ca.crt`, else system roots. */
  ca?: string;
  /** TLS server name to verify, when it differs from the URL's host. */
  servername?: string;
  /** Default: the key in `<stateDir>/device.key` (mode 0600). */
  keyStore?: KeyStore;
  /** Type of a newly made key. Default p256. */
  keyType?: KeyType;
  /** Gets the first certificate when there is none, and renews it. */
  enroller?: Enroller;
  /** Reconnect delays: full jitter, up to min(maxMs, baseMs * 2^attempt). */
  backoff?: BackoffOptions;
  keepaliveSeconds?: number;
  connectTimeoutMs?: number;
  /**
   * Resume the TLS session of the last connection when reconnecting (`mqtts://` only; TLS 1.3
   * tickets): no certificate exchange and no signatures, so a reconnect costs the device and the
   * platform a fraction of a full handshake. The platform still checks the certificate of a resumed
   * session against its revocation list. The session is kept in memory only and forgotten after a
   * renewal, when the platform refuses a connection and when it disconnects the device. Default true.
   */
  tlsSessionResumption?: boolean;
  /** `persistent: false` keeps the outbox in memory only (simulators). */
  outbox?: OutboxOptions & { persistent?: boolean };
  /** Telemetry messages awaiting PUBACK at once. Default 32. */
  maxInflight?: number;
  /** Largest telemetry payload accepted, as JSON bytes. Default 65536 (the platform's default). */
  maxTelemetryBytes?: number;
  renewal?: {
    /** Default true when an enroller is given. */
    enabled?: boolean;
    /** Renew when this fraction of the certificate's lifetime is left. Default 1/3. */
    remainingFraction?: number;
    /** New key for every new certificate. Default true. */
    rekey?: boolean;
    /** Retry delays after a failed renewal. Default 30 s doubling up to 1 h. */
    retry?: BackoffOptions;
  };
  capabilities?: CapabilityOptions;
  /** Randomness for the jitter (tests pass a seeded one). */
  random?: () => number;
  /** Epoch ms (tests). */
  now?: () => number;
}

export type CommandHandler = (
  payload: unknown,
  context: { id: string; name: string; expiresAt: number | undefined },
) => unknown;

export type DesiredHandler = (state: Record<string, unknown>, version: number) => void | Promise<void>;

export interface CertificateInfo {
  serial: string;
  notBefore: Date;
  notAfter: Date;
  fingerprint256: string;
}

export interface ConnectInfo {
  /** The TLS handshake resumed an earlier session (see `tlsSessionResumption`). */
  tlsSessionResumed: boolean;
}

export interface DeviceEvents {
  /** Connected, subscriptions in place. */
  connect: [info: ConnectInfo];
  disconnect: [info: { reason: string }];
  /** Something the SDK recovers from by itself (it keeps reconnecting, retrying); for logs. */
  warning: [error: Error];
  /** A telemetry message the platform acknowledged (also those replayed from an earlier run). */
  delivered: [entry: OutboxEntry];
  /** A telemetry message the platform refused for good; it is removed from the outbox. */
  refused: [entry: OutboxEntry, error: TelemetryRefusedError];
  renewed: [certificate: CertificateInfo];
}

/** The platform refused a message (MQTT 5 reason code >= 0x80 in the PUBACK). */
export class TelemetryRefusedError extends Error {
  override readonly name = 'TelemetryRefusedError';
  readonly reasonCode: number;
  constructor(reasonCode: number, message: string) {
    super(message);
    this.reasonCode = reasonCode;
  }
}

export class DeviceClosedError extends Error {
  override readonly name = 'DeviceClosedError';
  readonly code = 'DEVICE_CLOSED';
}

export class NotConnectedError extends Error {
  override readonly name = 'NotConnectedError';
  readonly code = 'NOT_CONNECTED';
}

// Quota exceeded (the platform's ingest queue is full) and server busy: the message is fine, send it later.
const RETRYABLE = new Set([0x97, 0x89]);
const STABLE_CONNECTION_MS = 30_000;
const SEEN_COMMANDS = 256;
const MAX_TWIN_BYTES = 64 * 1024;
const STREAM_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

interface Waiter {
  resolve(): void;
  reject(err: Error): void;
}

interface LatestSlot {
  payload: Buffer;
  /** Callers whose value is not on the wire yet. */
  waiting: Waiter[];
  /** Callers whose value is on the wire, sent over connection `sentGen`. */
  sent: Waiter[];
  sentPayload: Buffer | undefined;
  sentGen: number;
}

const FILES = { key: 'device.key', cert: 'device.crt', ca: 'ca.crt', outbox: 'outbox.log' } as const;

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function reasonCodeOf(err: unknown, packet: unknown): number | undefined {
  if (err) {
    const code = (err as { code?: unknown }).code;
    return typeof code === 'number' ? code : undefined;
  }
  const rc = (packet as { reasonCode?: unknown } | undefined)?.reasonCode;
  return typeof rc === 'number' ? rc : 0;
}

function certificateInfo(chainPem: string): CertificateInfo {
  const c = new X509Certificate(chainPem);
  return {
    serial: c.serialNumber.toLowerCase(),
    notBefore: new Date(c.validFrom),
    notAfter: new Date(c.validTo),
    fingerprint256: c.fingerprint256,
  };
}

function certificateMatchesKey(chainPem: string, key: DeviceKey): boolean {
  try {
    const spki = new X509Certificate(chainPem).publicKey.export({ type: 'spki', format: 'der' });
    return Buffer.from(spki).equals(key.publicKeyDer());
  } catch {
    return false;
  }
}

/**
 * The platform said no (a CONNACK reason code, a TLS alert): the next attempt starts afresh. A timeout or
 * a lost network says nothing about the session, which is kept: a fleet coming back after an outage
 * keeps its cheap handshakes, when the platform needs them most.
 */
function refusedByPlatform(err: Error | undefined): boolean {
  const code = (err as { code?: unknown } | undefined)?.code;
  return typeof code === 'number' || (typeof code === 'string' && code.startsWith('ERR_SSL'));
}

/** When to renew: once `remainingFraction` of the lifetime is left. */
export function renewalTime(notBefore: Date, notAfter: Date, remainingFraction = 1 / 3): number {
  const lifetime = notAfter.getTime() - notBefore.getTime();
  return notAfter.getTime() - Math.max(0, lifetime) * remainingFraction;
}

async function readOptional(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

export class DeviceClient extends EventEmitter<DeviceEvents> {
  readonly id: string;
  readonly #o: DeviceOptions;
  readonly #url: URL;
  readonly #keyStore: KeyStore;
  readonly #now: () => number;
  readonly #random: () => number;
  readonly #backoff: Required<BackoffOptions>;
  readonly #paths: Record<keyof typeof FILES, string>;

  #outbox: Outbox | undefined;
  #key: DeviceKey | undefined;
  #chain: string | undefined;
  #ca: string | undefined;
  #cert: CertificateInfo | undefined;

  #started = false;
  #running = false;
  #client: MqttClient | undefined;
  #connected = false;
  /** Incremented for every connection and disconnection: callbacks of an older connection are ignored. */
  #gen = 0;
  #attempt = 0;
  #skipDelay = false;
  #wake: (() => void) | undefined;
  #loopDone: Promise<void> | undefined;
  #connectWaiters = new Set<Waiter>();
  /** Key, certificate chain and CA, parsed once per credential set instead of on every connection. */
  #secureContext: SecureContext | undefined;
  /** The last TLS session (ticket) the platform gave us, to resume on the next connection. */
  #tlsSession: Buffer | undefined;
  #tlsResumed = false;

  readonly #inflight = new Set<number>();
  readonly #waiters = new Map<number, Waiter>();
  #pausedUntil = 0;
  #throttleAttempt = 0;
  #pumpTimer: ReturnType<typeof setTimeout> | undefined;

  readonly #latest = new Map<string, LatestSlot>();
  readonly #commands = new Map<string, CommandHandler>();
  readonly #seenCommands = new Set<string>();
  readonly #desiredHandlers = new Set<DesiredHandler>();
  #desired: TwinDesiredMessage | undefined;

  #renewTimer: ReturnType<typeof setTimeout> | undefined;
  #renewAttempt = 0;
  #renewing: Promise<void> | undefined;

  constructor(options: DeviceOptions) {
    super();
    if (!isValidDeviceId(options.deviceId))
      throw new TypeError(`invalid device id ${JSON.stringify(options.deviceId)}`);
    const url = new URL(options.url);
    if (url.protocol !== 'mqtts:' && url.protocol !== 'wss:') {
      throw new TypeError(
        `unsupported URL ${options.url}: use mqtts://host:8883 or wss://host:8443/mqtt (TLS only)`,
      );
    }
    if (options.keyType !== undefined && !KEY_TYPES.includes(options.keyType)) {
      throw new TypeError(`keyType must be one of ${KEY_TYPES.join(', ')}`);
    }
    this.id = options.deviceId;
    this.#o = options;
    this.#url = url;
    this.#now = options.now ?? Date.now;
    this.#random = options.random ?? Math.random;
    this.#backoff = resolveBackoff(options.backoff);
    this.#paths = {
      key: join(options.stateDir, FILES.key),
      cert: join(options.stateDir, FILES.cert),
      ca: join(options.stateDir, FILES.ca),
      outbox: join(options.stateDir, FILES.outbox),
    };
    this.#keyStore = options.keyStore ?? fileKeyStore(this.#paths.key);
  }

  get connected(): boolean {
    return this.#connected;
  }

  /** Telemetry messages not yet acknowledged (including those from an earlier run). */
  get pendingTelemetry(): number {
    return this.#outbox?.count ?? 0;
  }

  get certificate(): CertificateInfo | undefined {
    return this.#cert;
  }

  /** The last desired state received, or undefined before the first. */
  get desired(): { version: number; state: Record<string, unknown> } | undefined {
    return this.#desired;
  }

  /**
   * Loads (or makes, and enrolls) the key and certificate, opens the outbox and starts connecting.
   * Resolves once that is done, not when connected: see `waitConnected()`.
   */
  async start(): Promise<void> {
    if (this.#started) throw new Error('start() was already called');
    this.#started = true;
    await mkdir(this.#o.stateDir, { recursive: true, mode: 0o700 });
    await chmod(this.#o.stateDir, 0o700);
    await this.#loadCredentials();
    const ob = this.#o.outbox ?? {};
    this.#outbox = ob.persistent === false ? memoryOutbox(ob) : await fileOutbox(this.#paths.outbox, ob);
    this.#running = true;
    this.#loopDone = this.#loop();
    this.#scheduleRenewal();
  }

  /** Resolves when connected (now, if already); rejects after `timeoutMs` or on close(). */
  waitConnected(timeoutMs = 30_000): Promise<void> {
    if (this.#connected) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#connectWaiters.delete(w);
        reject(new NotConnectedError(`not connected within ${timeoutMs} ms`));
      }, timeoutMs);
      const w: Waiter = {
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
        reject: (err) => {
          clearTimeout(timer);
          reject(err);
        },
      };
      this.#connectWaiters.add(w);
    });
  }

  /**
   * Sends a telemetry object to `devices/{id}/telemetry[/stream]`. The message is in the outbox (on
   * disk, unless the outbox is in memory) when this is called; the promise resolves when the platform
   * acknowledged it, which is after it committed it. Offline, it waits for the connection. Rejects with
   * TelemetryRefusedError (reason code) when refused, OutboxFullError when the outbox is full.
   */
  async telemetry(data: Record<string, unknown>, options: { stream?: string } = {}): Promise<void> {
    if (!this.#outbox || !this.#running) throw new DeviceClosedError('the device is not started');
    if (!isPlainObject(data)) throw new TypeError('telemetry must be a JSON object');
    if (options.stream !== undefined && !STREAM_PATTERN.test(options.stream)) {
      throw new TypeError(`invalid stream name ${JSON.stringify(options.stream)}`);
    }
    const payload = Buffer.from(JSON.stringify(data));
    const max = this.#o.maxTelemetryBytes ?? 65_536;
    if (payload.length > max)
      throw new RangeError(`telemetry is ${payload.length} bytes; the limit is ${max}`);
    return this.#durable(topics.telemetry(this.id, options.stream), payload);
  }

  /**
   * Reports tampering the device noticed (enclosure opened, debug port enabled, secure boot failed...)
   * on `devices/{id}/events/tamper`; the platform records it as a critical posture finding. Durable like
   * telemetry: kept in the outbox until the platform acknowledged it. A quarantined device may still
   * send it.
   */
  async reportTamper(report: TamperReport): Promise<void> {
    if (!this.#outbox || !this.#running) throw new DeviceClosedError('the device is not started');
    if (typeof report.kind !== 'string' || !TAMPER_KIND.test(report.kind))
      throw new TypeError(`invalid tamper kind ${JSON.stringify(report.kind)}`);
    if (report.detail !== undefined && report.detail.length > 512)
      throw new RangeError('tamper detail is longer than 512 characters');
    const at = report.at ?? new Date(this.#now()).toISOString();
    if (!ISO_TIME.test(at) || Number.isNaN(Date.parse(at)))
      throw new TypeError(`invalid time ${JSON.stringify(at)}: ISO 8601 with a time zone`);
    const msg: TamperReport = {
      kind: report.kind,
      ...(report.detail !== undefined ? { detail: report.detail } : {}),
      at,
    };
    return this.#durable(topics.tamper(this.id), Buffer.from(JSON.stringify(msg)));
  }

  /** Appends to the outbox and resolves when the platform acknowledged the message. */
  async #durable(topic: string, payload: Buffer): Promise<void> {
    if (!this.#outbox) throw new DeviceClosedError('the device is not started');
    const { entry, dropped } = await this.#outbox.append(topic, payload, this.#now());
    for (const d of dropped)
      this.#settle(d.seq, new OutboxFullError('dropped from a full outbox to make room'));
    const done = new Promise<void>((resolve, reject) => this.#waiters.set(entry.seq, { resolve, reject }));
    this.#pump();
    return done;
  }

  /**
   * Handles command `name` (`*` for any command without its own handler). What the handler returns
   * (or resolves to) is the result; a throw makes the command `failed` with the error's message.
   * A command id already seen (a redelivery) is not run again.
   */
  onCommand(name: string, handler: CommandHandler): () => void {
    this.#commands.set(name, handler);
    return () => {
      if (this.#commands.get(name) === handler) this.#commands.delete(name);
    };
  }

  /** Called with the desired state on every connect (retained) and on every change. */
  onDesired(handler: DesiredHandler): () => void {
    this.#desiredHandlers.add(handler);
    if (this.#desired) {
      const d = this.#desired;
      void Promise.resolve()
        .then(() => handler(d.state, d.version))
        .catch((err: unknown) => this.#warn(err));
    }
    return () => this.#desiredHandlers.delete(handler);
  }

  /**
   * Publishes the whole reported state. Latest wins: offline, only the last call's state is sent after
   * reconnecting, and every call waiting resolves with its PUBACK.
   */
  reportTwin(state: Record<string, unknown>, options: { desiredVersion?: number } = {}): Promise<void> {
    if (!isPlainObject(state)) return Promise.reject(new TypeError('reported state must be a JSON object'));
    const msg: TwinReportedMessage = {
      state,
      ...(options.desiredVersion !== undefined ? { desiredVersion: options.desiredVersion } : {}),
    };
    const payload = Buffer.from(JSON.stringify(msg));
    if (payload.length > MAX_TWIN_BYTES) {
      return Promise.reject(
        new RangeError(`reported state is ${payload.length} bytes; the limit is ${MAX_TWIN_BYTES}`),
      );
    }
    return this.#publishLatest(topics.twinReported(this.id), payload);
  }

  /** Builds the capability report (with listening ports read from the OS) and publishes it. */
  async reportCapabilities(extra: Partial<CapabilityReport> = {}): Promise<CapabilityReport> {
    const report = { ...(await this.buildCapabilities()), ...extra };
    await this.#publishLatest(topics.capabilities(this.id), Buffer.from(JSON.stringify(report)));
    return report;
  }

  buildCapabilities(): Promise<CapabilityReport> {
    return buildCapabilityReport(this.#o.capabilities ?? {}, {
      keyStorage: this.#keyStore.storage,
      tlsVersions: ['TLSv1.2', 'TLSv1.3'],
      keyTypes: [...KEY_TYPES],
    });
  }

  /**
   * Gets a new certificate now (normally called by the renewal timer): new key (unless rekey is false),
   * CSR, enroller.renew(), files replaced, and the connection re-established with the new certificate.
   */
  renewCertificate(): Promise<void> {
    this.#renewing ??= this.#renew().finally(() => {
      this.#renewing = undefined;
    });
    return this.#renewing;
  }

  /** Stops reconnecting and disconnects. Pending telemetry stays in the outbox for the next start. */
  async close(): Promise<void> {
    if (!this.#running) return;
    this.#running = false;
    if (this.#renewTimer) clearTimeout(this.#renewTimer);
    if (this.#pumpTimer) clearTimeout(this.#pumpTimer);
    this.#wake?.();
    const c = this.#client;
    if (c) {
      await Promise.race([
        c.endAsync(false).catch(() => {}),
        new Promise<void>((r) => setTimeout(r, 2000).unref()),
      ]);
      c.end(true);
    }
    await this.#loopDone;
    const closed = new DeviceClosedError('the device was closed');
    for (const [, w] of this.#waiters) w.reject(closed);
    this.#waiters.clear();
    for (const slot of this.#latest.values())
      for (const w of [...slot.waiting, ...slot.sent]) w.reject(closed);
    this.#latest.clear();
    for (const w of this.#connectWaiters) w.reject(closed);
    this.#connectWaiters.clear();
    await this.#renewing?.catch(() => {});
    await this.#outbox?.close();
  }

  // ---- credentials --------------------------------------------------------------------------------

  async #loadCredentials(): Promise<void> {
    // A renewal interrupted between the key and the certificate: finish it if the pair matches.
    const pendingCert = await readOptional(`${this.#paths.cert}.new`);
    let key = await this.#keyStore.load();
    if (pendingCert !== undefined) {
      if (key && certificateMatchesKey(pendingCert, key))
        await rename(`${this.#paths.cert}.new`, this.#paths.cert);
      else await rm(`${this.#paths.cert}.new`, { force: true });
    }
    let chain = await readOptional(this.#paths.cert);
    if (!key || !chain || !certificateMatchesKey(chain, key)) {
      const enroller = this.#o.enroller;
      if (!enroller) {
        throw new Error(
          `${this.#o.stateDir} holds no matching key and certificate, and no enroller was given to get them`,
        );
      }
      let staged = false;
      if (!key) {
        key = await this.#keyStore.generate(this.#o.keyType ?? 'p256');
        staged = true;
      }
      const res = await enroller.enroll({ deviceId: this.id, csrPem: await createCsr(this.id, key) });
      if (!certificateMatchesKey(res.certificateChainPem, key)) {
        throw new Error('the enrollment returned a certificate for another key');
      }
      if (staged) await this.#keyStore.commit(key);
      await replaceFile(this.#paths.cert, res.certificateChainPem, 0o644);
      if (res.caPem !== undefined && this.#o.ca === undefined)
        await replaceFile(this.#paths.ca, res.caPem, 0o644);
      chain = res.certificateChainPem;
    }
    this.#key = key;
    this.#chain = chain;
    this.#cert = certificateInfo(chain);
    this.#ca = this.#o.ca ?? (await readOptional(this.#paths.ca));
  }

  async #renew(): Promise<void> {
    const enroller = this.#o.enroller;
    const current = this.#key;
    const chain = this.#chain;
    if (!enroller) throw new Error('no enroller configured');
    if (!current || !chain) throw new Error('start() the device first');
    const rekey = this.#o.renewal?.rekey ?? true;
    const key = rekey ? await this.#keyStore.generate(current.keyType) : current;
    const res = await enroller.renew({
      deviceId: this.id,
      csrPem: await createCsr(this.id, key),
      current: { certificateChainPem: chain, key: current },
    });
    if (!certificateMatchesKey(res.certificateChainPem, key)) {
      throw new Error('the renewal returned a certificate for another key');
    }
    // Certificate first (as .new), then the key, then the certificate into place: a crash in between
    // is repaired by #loadCredentials on the next start.
    await rm(`${this.#paths.cert}.new`, { force: true });
    await replaceFile(`${this.#paths.cert}.new`, res.certificateChainPem, 0o644);
    if (rekey) await this.#keyStore.commit(key);
    await rename(`${this.#paths.cert}.new`, this.#paths.cert);
    if (res.caPem !== undefined && this.#o.ca === undefined) {
      await replaceFile(this.#paths.ca, res.caPem, 0o644);
      this.#ca = res.caPem;
    }
    this.#key = key;
    this.#chain = res.certificateChainPem;
    this.#secureContext = undefined;
    this.#cert = certificateInfo(res.certificateChainPem);
    this.#renewAttempt = 0;
    this.emit('renewed', this.#cert);
    this.#scheduleRenewal();
    // Reconnect at once with the new certificate, in a full handshake: a resumed session would carry
    // the old one.
    this.#tlsSession = undefined;
    if (this.#client) {
      this.#skipDelay = true;
      this.#client.end(false);
    }
  }

  #scheduleRenewal(): void {
    if (this.#renewTimer) clearTimeout(this.#renewTimer);
    const r = this.#o.renewal ?? {};
    if (!this.#running || !this.#cert || !this.#o.enroller || r.enabled === false) return;
    const at = renewalTime(this.#cert.notBefore, this.#cert.notAfter, r.remainingFraction ?? 1 / 3);
    const wait = Math.max(0, at - this.#now());
    this.#renewTimer = setTimeout(
      () => {
        if (this.#now() < at) {
          this.#scheduleRenewal(); // the timer was capped at ~24 days
          return;
        }
        this.renewCertificate().catch((err: unknown) => {
          this.#warn(err);
          const delay = backoffDelay(
            this.#renewAttempt++,
            r.retry ?? { baseMs: 30_000, maxMs: 3_600_000 },
            this.#random,
          );
          if (this.#renewTimer) clearTimeout(this.#renewTimer);
          this.#renewTimer = setTimeout(() => this.#scheduleRenewal(), delay);
          this.#renewTimer.unref();
        });
      },
      Math.min(wait, 2 ** 31 - 1),
    );
    this.#renewTimer.unref();
  }

  // ---- connection ---------------------------------------------------------------------------------

  async #loop(): Promise<void> {
    while (this.#running) {
      let upSince = 0;
      try {
        const { client, closed } = await this.#connectOnce();
        upSince = this.#now();
        await this.#onConnected(client);
        await closed;
      } catch (err) {
        this.#warn(err);
      }
      if (!this.#running) break;
      if (upSince > 0 && this.#now() - upSince >= STABLE_CONNECTION_MS) this.#attempt = 0;
      if (this.#skipDelay) {
        this.#skipDelay = false;
        continue;
      }
      await this.#sleep(backoffDelay(this.#attempt++, this.#backoff, this.#random));
    }
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.#wake = done;
    });
  }

  #clientOptions(): IClientOptions {
    const key = this.#key?.tlsKey() ?? {};
    const tls = {
      ...key,
      cert: this.#chain,
      ...(this.#ca !== undefined ? { ca: this.#ca } : {}),
      rejectUnauthorized: true,
      ...(this.#o.servername !== undefined ? { servername: this.#o.servername } : {}),
    };
    const resume = this.#url.protocol === 'mqtts:' && this.#o.tlsSessionResumption !== false;
    const common: IClientOptions = {
      ...(resume && this.#tlsSession !== undefined ? { session: this.#tlsSession } : {}),
      clientId: this.id,
      protocolVersion: 5,
      clean: true,
      keepalive: this.#o.keepaliveSeconds ?? 60,
      connectTimeout: this.#o.connectTimeoutMs ?? 10_000,
      reconnectPeriod: 0, // reconnects are ours: backoff with jitter
      resubscribe: false,
      queueQoSZero: false,
    };
    if (this.#url.protocol === 'wss:') {
      return { ...common, wsOptions: tls as NonNullable<IClientOptions['wsOptions']> };
    }
    // Parsing the key, the chain and the CA costs about as much CPU as the rest of a resumed handshake;
    // a device reconnecting (a fleet after an outage) does it once.
    this.#secureContext ??= createSecureContext({
      ...key,
      ...(this.#chain !== undefined ? { cert: this.#chain } : {}),
      ...(this.#ca !== undefined ? { ca: this.#ca } : {}),
    });
    return {
      ...common,
      secureContext: this.#secureContext,
      rejectUnauthorized: true,
      ...(this.#o.servername !== undefined ? { servername: this.#o.servername } : {}),
    } as IClientOptions;
  }

  #connectOnce(): Promise<{ client: MqttClient; closed: Promise<void> }> {
    return new Promise((resolve, reject) => {
      const client = mqtt.connect(this.#url.href, this.#clientOptions());
      this.#client = client;
      this.#tlsResumed = false;
      if (this.#url.protocol === 'mqtts:' && this.#o.tlsSessionResumption !== false) {
        const socket = client.stream as TLSSocket | undefined;
        socket?.on('session', (session: Buffer) => {
          if (this.#client === client) this.#tlsSession = session;
        });
        socket?.once('secureConnect', () => {
          if (this.#client === client) this.#tlsResumed = socket.isSessionReused();
        });
      }
      let settled = false;
      let closedResolve!: () => void;
      const closed = new Promise<void>((r) => (closedResolve = r));
      let lastError: Error | undefined;
      client.on('error', (err) => {
        lastError = err;
        if (settled) this.#warn(err);
      });
      client.on('message', (topic, payload, packet) => this.#onMessage(topic, payload, packet.properties));
      client.on('disconnect', (packet) => {
        // The platform ended the session (revoked, taken over, shutting down): start afresh next time.
        this.#tlsSession = undefined;
        lastError = new Error(
          `disconnected by the platform (reason 0x${(packet.reasonCode ?? 0).toString(16)}${packet.properties?.reasonString ? `: ${packet.properties.reasonString}` : ''})`,
        );
      });
      client.once('connect', () => {
        settled = true;
        resolve({ client, closed });
      });
      client.once('close', () => {
        const wasConnected = this.#connected;
        this.#gen++;
        this.#connected = false;
        this.#inflight.clear();
        if (this.#client === client) this.#client = undefined;
        client.removeAllListeners('message');
        client.end(true);
        if (wasConnected) this.emit('disconnect', { reason: lastError?.message ?? 'connection closed' });
        if (!settled) {
          settled = true;
          if (refusedByPlatform(lastError)) this.#tlsSession = undefined;
          reject(lastError ?? new Error('connection closed before CONNACK'));
        }
        closedResolve();
      });
    });
  }

  async #onConnected(client: MqttClient): Promise<void> {
    const gen = ++this.#gen;
    try {
      const granted = await client.subscribeAsync({
        [topics.commandFilter(this.id)]: { qos: 1, nl: true },
        [topics.twinDesired(this.id)]: { qos: 1 },
      });
      for (const g of granted) {
        if (g.qos > 2) this.#warn(new Error(`subscription to ${g.topic} refused (0x${g.qos.toString(16)})`));
      }
    } catch (err) {
      this.#warn(err);
    }
    if (gen !== this.#gen || !client.connected) return; // lost while subscribing
    this.#connected = true;
    for (const w of this.#connectWaiters) w.resolve();
    this.#connectWaiters.clear();
    this.emit('connect', { tlsSessionResumed: this.#tlsResumed });
    this.#pump();
    for (const [topic, slot] of this.#latest) {
      slot.waiting.unshift(...slot.sent);
      slot.sent = [];
      slot.sentPayload = undefined;
      this.#flushLatest(topic);
    }
    if (this.#o.capabilities?.reportOnConnect) {
      this.reportCapabilities().catch((err: unknown) => this.#warn(err));
    }
  }

  #warn(err: unknown): void {
    this.emit('warning', err instanceof Error ? err : new Error(String(err)));
  }

  // ---- telemetry ----------------------------------------------------------------------------------

  #settle(seq: number, err?: Error): void {
    const w = this.#waiters.get(seq);
    if (!w) return;
    this.#waiters.delete(seq);
    if (err) w.reject(err);
    else w.resolve();
  }

  #pump(): void {
    const client = this.#client;
    const outbox = this.#outbox;
    if (!this.#connected || !client || !outbox) return;
    const wait = this.#pausedUntil - this.#now();
    if (wait > 0) {
      if (!this.#pumpTimer) {
        this.#pumpTimer = setTimeout(() => {
          this.#pumpTimer = undefined;
          this.#pump();
        }, wait);
      }
      return;
    }
    const max = this.#o.maxInflight ?? 32;
    const gen = this.#gen;
    for (const e of outbox.entries()) {
      if (this.#inflight.size >= max) break;
      if (this.#inflight.has(e.seq)) continue;
      this.#inflight.add(e.seq);
      client.publish(e.topic, e.payload, { qos: 1 }, (err, packet) => {
        void this.#onPuback(gen, e, err, packet);
      });
    }
  }

  async #onPuback(gen: number, e: OutboxEntry, err: unknown, packet: unknown): Promise<void> {
    if (gen !== this.#gen) return; // that connection is gone; the message goes out again on the next one
    const code = reasonCodeOf(err, packet);
    if (code === undefined) return; // not answered (connection failing); the close handler resets
    this.#inflight.delete(e.seq);
    if (code >= 0x80 && RETRYABLE.has(code)) {
      // The platform is overloaded: keep the message, slow down.
      this.#pausedUntil = this.#now() + backoffDelay(this.#throttleAttempt++, this.#backoff, this.#random);
      this.#pump();
      return;
    }
    this.#throttleAttempt = 0;
    // Removed from memory at once (never sent again); the file record follows.
    const removal = this.#outbox?.remove(e.seq).catch((err: unknown) => this.#warn(err));
    if (code >= 0x80) {
      const refused = new TelemetryRefusedError(
        code,
        `telemetry refused (0x${code.toString(16)}): ${(err as Error | undefined)?.message ?? ''}`,
      );
      this.#settle(e.seq, refused);
      this.emit('refused', e, refused);
    } else {
      this.#settle(e.seq);
      this.emit('delivered', e);
    }
    this.#pump();
    await removal;
  }

  // ---- latest-wins messages (twin reported, capabilities) ----------------------------------------

  #publishLatest(topic: string, payload: Buffer): Promise<void> {
    if (!this.#running) return Promise.reject(new DeviceClosedError('the device is not started'));
    return new Promise((resolve, reject) => {
      const slot = this.#latest.get(topic);
      if (slot) {
        slot.payload = payload;
        slot.waiting.push({ resolve, reject });
      } else {
        this.#latest.set(topic, {
          payload,
          waiting: [{ resolve, reject }],
          sent: [],
          sentPayload: undefined,
          sentGen: 0,
        });
      }
      this.#flushLatest(topic);
    });
  }

  #flushLatest(topic: string): void {
    const slot = this.#latest.get(topic);
    const client = this.#client;
    if (!slot || !client || !this.#connected || slot.sentPayload !== undefined || slot.waiting.length === 0)
      return;
    const gen = this.#gen;
    slot.sent = slot.waiting;
    slot.waiting = [];
    slot.sentPayload = slot.payload;
    slot.sentGen = gen;
    client.publish(topic, slot.payload, { qos: 1 }, (err, packet) => {
      if (gen !== this.#gen || slot.sentGen !== gen) return; // re-sent on the next connection
      const code = reasonCodeOf(err, packet);
      if (code === undefined) return;
      const done = slot.sent;
      slot.sent = [];
      slot.sentPayload = undefined;
      const refused =
        code >= 0x80
          ? new TelemetryRefusedError(
              code,
              `refused (0x${code.toString(16)}): ${(err as Error | undefined)?.message ?? ''}`,
            )
          : undefined;
      for (const w of done) {
        if (refused) w.reject(refused);
        else w.resolve();
      }
      if (slot.waiting.length === 0) this.#latest.delete(topic);
      else this.#flushLatest(topic);
    });
  }

  // ---- inbound: commands and twin -----------------------------------------------------------------

  #onMessage(topic: string, payload: Buffer, properties: { correlationData?: Buffer } | undefined): void {
    const parsed = parseDeviceTopic(topic);
    if (!parsed || parsed.deviceId !== this.id) return;
    if (parsed.kind === 'command')
      void this.#onCommandMessage(parsed.name, payload, properties?.correlationData);
    else if (parsed.kind === 'twin-desired') this.#onDesiredMessage(payload);
  }

  async #onCommandMessage(name: string, payload: Buffer, correlationData: Buffer | undefined): Promise<void> {
    let req: CommandRequest;
    try {
      const v = JSON.parse(payload.toString('utf8')) as unknown;
      if (!isPlainObject(v) || typeof v.id !== 'string' || v.id === '' || v.id.length > 128)
        throw new Error('no id');
      req = v as unknown as CommandRequest;
    } catch {
      this.#warn(new Error(`ignored a malformed command on ${name}`));
      return;
    }
    if (this.#seenCommands.has(req.id)) return;
    this.#seenCommands.add(req.id);
    if (this.#seenCommands.size > SEEN_COMMANDS) {
      const oldest = this.#seenCommands.values().next().value;
      if (oldest !== undefined) this.#seenCommands.delete(oldest);
    }
    const handler = this.#commands.get(name) ?? this.#commands.get('*');
    let result: CommandResult;
    if (!handler) {
      result = { id: req.id, status: 'failed', error: `unknown command ${name}` };
    } else {
      try {
        const value = await handler(req.payload, {
          id: req.id,
          name,
          expiresAt: typeof req.expiresAt === 'number' ? req.expiresAt : undefined,
        });
        result = { id: req.id, status: 'succeeded', ...(value !== undefined ? { result: value } : {}) };
      } catch (err) {
        result = {
          id: req.id,
          status: 'failed',
          error: String((err as Error)?.message ?? err).slice(0, 1024),
        };
      }
    }
    let body: string;
    try {
      body = JSON.stringify(result);
    } catch (err) {
      body = JSON.stringify({
        id: req.id,
        status: 'failed',
        error: `result is not JSON: ${(err as Error).message}`,
      });
    }
    const client = this.#client;
    if (!client || !this.#connected) {
      this.#warn(new NotConnectedError(`the reply to command ${req.id} was lost: not connected`));
      return;
    }
    const opts: IClientPublishOptions = {
      qos: 1,
      ...(correlationData ? { properties: { correlationData } } : {}),
    };
    client.publish(topics.commandResults(this.id), body, opts, (err) => {
      if (err) this.#warn(err);
    });
  }

  #onDesiredMessage(payload: Buffer): void {
    if (payload.length === 0) return; // retained state cleared
    let msg: TwinDesiredMessage;
    try {
      const v = JSON.parse(payload.toString('utf8')) as unknown;
      if (!isPlainObject(v) || !Number.isSafeInteger(v.version) || !isPlainObject(v.state))
        throw new Error('bad');
      msg = { version: v.version as number, state: v.state };
    } catch {
      this.#warn(new Error('ignored a malformed desired state'));
      return;
    }
    if (this.#desired?.version === msg.version) return; // the retained copy again
    this.#desired = msg;
    for (const h of this.#desiredHandlers) {
      void Promise.resolve()
        .then(() => h(msg.state, msg.version))
        .catch((err: unknown) => this.#warn(err));
    }
  }
}

/** Creates a device client; call `start()` on it. */
export function createDevice(options: DeviceOptions): DeviceClient {
  return new DeviceClient(options);
}

/** Whether `stateDir` already holds a certificate (so no enrollment is needed). */
export async function hasCertificate(stateDir: string): Promise<boolean> {
  try {
    await stat(join(stateDir, FILES.cert));
    return true;
  } catch {
    return false;
  }
}
