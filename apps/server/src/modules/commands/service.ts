import { createHash } from 'node:crypto';
import {
  isValidCommandName,
  topics,
  type CapabilityReport,
  type CommandRequest,
  type TwinDesiredMessage,
} from '@bulwark/protocol';
import { AppError, type Clock, type Ids, type Logger } from '../../kernel/index.ts';
import type { CapabilityVersion, CommandOutcome, CommandsStore, OutboundMessage, Twin } from './model.ts';
import { validateCapabilities } from './capabilities.ts';

export const LIMITS = {
  commandPayloadBytes: 64 * 1024,
  twinBytes: 64 * 1024,
  capabilitiesBytes: 256 * 1024,
  pendingPerDevice: 16,
  pendingTotal: 10_000,
  defaultTimeoutMs: 30_000,
  minTimeoutMs: 100,
  maxTimeoutMs: 300_000,
} as const;

export interface CommandsService {
  /** Publishes a command to the device's own connection and waits for its reply (or the timeout). */
  send(
    tenant: string,
    deviceId: string,
    cmd: { name: string; payload?: unknown; timeoutMs?: number },
  ): Promise<CommandOutcome>;
  getTwin(tenant: string, deviceId: string): Promise<Twin>;
  setDesired(
    tenant: string,
    deviceId: string,
    state: Record<string, unknown>,
    expectedVersion?: number,
  ): Promise<Twin>;
  getCapabilities(tenant: string, deviceId: string): Promise<CapabilityVersion>;
  listCapabilities(
    tenant: string,
    deviceId: string,
    opts?: { limit?: number; cursor?: string },
  ): Promise<{ items: CapabilityVersion[]; nextCursor: string | null }>;

  /** From the device (MQTT): a command result. Unknown or late ids are ignored. */
  handleResult(tenant: string, deviceId: string, payload: Buffer): void;
  handleReported(tenant: string, deviceId: string, payload: Buffer): Promise<void>;
  handleCapabilities(
    tenant: string,
    deviceId: string,
    payload: Buffer,
  ): Promise<{ version: number; changed: boolean }>;
  /** The device connected: make sure its desired state is retained in the broker (it is kept in memory there). */
  deviceConnected(tenant: string, deviceId: string): Promise<void>;
  deviceDeleted(tenant: string, deviceId: string): Promise<void>;
  /** Commands waiting for a reply. */
  readonly pending: number;
  /** Pending commands end as `timeout`. */
  close(): void;
}

export interface CommandsDeps {
  store: CommandsStore;
  clock: Clock;
  ids: Ids;
  logger: Logger;
  /** Sends to a device over the connection it opened (the broker); nothing dials a device. */
  publish(msg: OutboundMessage): Promise<void>;
  isConnected(tenant: string, deviceId: string): boolean;
  /** Throws ERR_DEVICE_NOT_FOUND. */
  deviceExists(tenant: string, deviceId: string): Promise<void>;
  /**
   * A new capability version was stored (wired in app.ts to dynamic groups and live policies); the
   * device's publish is acknowledged after it settles. Its failure is logged, the report stays stored.
   */
  capabilitiesStored?(
    tenant: string,
    deviceId: string,
    version: number,
    report: CapabilityReport,
  ): Promise<void>;
}

interface Waiter {
  tenant: string;
  deviceId: string;
  resolve(o: CommandOutcome): void;
  timer: ReturnType<typeof setTimeout>;
}

const decoder = new TextDecoder('utf-8', { fatal: true });

function parseJson(
  payload: Buffer,
  code: 'ERR_COMMAND_RESULT_INVALID' | 'ERR_TWIN_INVALID' | 'ERR_CAPABILITIES_INVALID',
): unknown {
  try {
    return JSON.parse(decoder.decode(payload));
  } catch {
    throw new AppError(code, undefined, { detail: 'not UTF-8 JSON' });
  }
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

const key = (tenant: string, deviceId: string) => `${tenant}\u0000${deviceId}`;

export function createCommandsService(deps: CommandsDeps): CommandsService {
  const { store, clock, ids, logger } = deps;
  const waiters = new Map<string, Waiter>();
  const perDevice = new Map<string, number>();
  // Devices whose desired state this process has put into the broker's (in-memory) retained store.
  const retained = new Set<string>();

  const finish = (id: string, outcome: CommandOutcome) => {
    const w = waiters.get(id);
    if (!w) return;
    waiters.delete(id);
    clearTimeout(w.timer);
    const k = key(w.tenant, w.deviceId);
    const n = (perDevice.get(k) ?? 1) - 1;
    if (n <= 0) perDevice.delete(k);
    else perDevice.set(k, n);
    w.resolve(outcome);
  };

  const twinOf = (row: Awaited<ReturnType<CommandsStore['getTwin']>>): Twin => ({
    desired: row
      ? {
          version: row.desiredVersion,
          state: JSON.parse(row.desired) as Record<string, unknown>,
          updatedAt: row.desiredUpdatedAt,
        }
      : { version: 0, state: {}, updatedAt: null },
    reported:
      row?.reported != null && row.reportedUpdatedAt !== null
        ? {
            state: JSON.parse(row.reported) as Record<string, unknown>,
            desiredVersion: row.reportedDesiredVersion,
            updatedAt: row.reportedUpdatedAt,
          }
        : null,
  });

  const publishDesired = async (
    tenant: string,
    deviceId: string,
    version: number,
    state: Record<string, unknown>,
  ) => {
    const msg: TwinDesiredMessage = { version, state };
    await deps.publish({
      topic: topics.twinDesired(deviceId),
      payload: Buffer.from(JSON.stringify(msg)),
      qos: 1,
      retain: true,
      properties: { contentType: 'application/json' },
    });
    retained.add(key(tenant, deviceId));
  };

  const capabilityOf = (r: { version: number; json: string; reportedAt: number }): CapabilityVersion => ({
    version: r.version,
    reportedAt: r.reportedAt,
    capabilities: JSON.parse(r.json) as Record<string, unknown>,
  });

  return {
    get pending() {
      return waiters.size;
    },

    async send(tenant, deviceId, cmd) {
      if (!isValidCommandName(cmd.name)) throw new AppError('ERR_COMMAND_INVALID_NAME');
      const timeoutMs = cmd.timeoutMs ?? LIMITS.defaultTimeoutMs;
      if (
        !Number.isInteger(timeoutMs) ||
        timeoutMs < LIMITS.minTimeoutMs ||
        timeoutMs > LIMITS.maxTimeoutMs
      ) {
        throw new AppError(
          'ERR_VALIDATION',
          `timeoutMs must be ${LIMITS.minTimeoutMs}-${LIMITS.maxTimeoutMs}`,
        );
      }
      const id = ids.uuid();
      const expiresAt = clock.now() + timeoutMs;
      const request: CommandRequest = {
        id,
        name: cmd.name,
        ...(cmd.payload !== undefined ? { payload: cmd.payload } : {}),
        expiresAt,
      };
      const body = Buffer.from(JSON.stringify(request));
      if (body.length > LIMITS.commandPayloadBytes) {
        throw new AppError(
          'ERR_COMMAND_TOO_LARGE',
          `The command is ${body.length} bytes; the limit is ${LIMITS.commandPayloadBytes}`,
        );
      }
      await deps.deviceExists(tenant, deviceId);
      if (!deps.isConnected(tenant, deviceId)) throw new AppError('ERR_COMMAND_DEVICE_OFFLINE');
      const k = key(tenant, deviceId);
      if ((perDevice.get(k) ?? 0) >= LIMITS.pendingPerDevice || waiters.size >= LIMITS.pendingTotal) {
        throw new AppError('ERR_COMMAND_TOO_MANY');
      }
      // Registered before publishing: a fast device may answer before publish() resolves.
      const outcome = new Promise<CommandOutcome>((resolve) => {
        const timer = setTimeout(() => finish(id, { id, status: 'timeout' }), timeoutMs);
        waiters.set(id, { tenant, deviceId, resolve, timer });
        perDevice.set(k, (perDevice.get(k) ?? 0) + 1);
      });
      try {
        await deps.publish({
          topic: topics.command(deviceId, cmd.name),
          payload: body,
          qos: 1,
          properties: {
            responseTopic: topics.commandResults(deviceId),
            correlationData: Buffer.from(id),
            // [MQTT-3.3.2-5] not delivered after the platform stopped waiting.
            messageExpiryInterval: Math.ceil(timeoutMs / 1000),
            contentType: 'application/json',
          },
        });
      } catch (err) {
        finish(id, { id, status: 'failed', error: 'not sent' });
        throw err;
      }
      return outcome;
    },

    handleResult(tenant, deviceId, payload) {
      const v = parseJson(payload, 'ERR_COMMAND_RESULT_INVALID');
      if (
        !isObject(v) ||
        typeof v.id !== 'string' ||
        v.id.length > 128 ||
        (v.status !== 'succeeded' && v.status !== 'failed') ||
        (v.error !== undefined && typeof v.error !== 'string')
      ) {
        throw new AppError('ERR_COMMAND_RESULT_INVALID');
      }
      const w = waiters.get(v.id);
      // Only the device the command went to can answer it.
      if (!w || w.tenant !== tenant || w.deviceId !== deviceId) {
        logger.debug(
          { deviceId, commandId: v.id },
          'command result for no waiting command (late or unknown)',
        );
        return;
      }
      finish(v.id, {
        id: v.id,
        status: v.status,
        ...(v.result !== undefined ? { result: v.result } : {}),
        ...(typeof v.error === 'string' ? { error: v.error.slice(0, 1024) } : {}),
      });
    },

    async getTwin(tenant, deviceId) {
      await deps.deviceExists(tenant, deviceId);
      return twinOf(await store.getTwin(tenant, deviceId));
    },

    async setDesired(tenant, deviceId, state, expectedVersion) {
      if (!isObject(state)) throw new AppError('ERR_TWIN_INVALID', 'desired must be a JSON object');
      const json = JSON.stringify(state);
      if (Buffer.byteLength(json) > LIMITS.twinBytes) throw new AppError('ERR_TWIN_TOO_LARGE');
      await deps.deviceExists(tenant, deviceId);
      const version = await store.setDesired(tenant, deviceId, json, clock.now(), expectedVersion);
      if (version === undefined) throw new AppError('ERR_TWIN_VERSION_CONFLICT');
      // Stored first: a failed publish is repaired when the device next connects (deviceConnected).
      await publishDesired(tenant, deviceId, version, state).catch((err: unknown) => {
        retained.delete(key(tenant, deviceId));
        logger.warn({ err: String(err), deviceId }, 'desired state stored but not published');
      });
      return twinOf(await store.getTwin(tenant, deviceId));
    },

    async handleReported(tenant, deviceId, payload) {
      if (payload.length > LIMITS.twinBytes) throw new AppError('ERR_TWIN_TOO_LARGE');
      const v = parseJson(payload, 'ERR_TWIN_INVALID');
      if (
        !isObject(v) ||
        !isObject(v.state) ||
        (v.desiredVersion !== undefined &&
          !(Number.isSafeInteger(v.desiredVersion) && (v.desiredVersion as number) >= 0)) ||
        Object.keys(v).some((k) => k !== 'state' && k !== 'desiredVersion')
      ) {
        throw new AppError('ERR_TWIN_INVALID');
      }
      await store.setReported(
        tenant,
        deviceId,
        JSON.stringify(v.state),
        v.desiredVersion === undefined ? null : (v.desiredVersion as number),
        clock.now(),
      );
    },

    async handleCapabilities(tenant, deviceId, payload) {
      if (payload.length > LIMITS.capabilitiesBytes) {
        throw new AppError(
          'ERR_CAPABILITIES_INVALID',
          `The report is larger than ${LIMITS.capabilitiesBytes} bytes`,
        );
      }
      const report = validateCapabilities(parseJson(payload, 'ERR_CAPABILITIES_INVALID'));
      const json = JSON.stringify(report);
      const digest = createHash('sha256').update(json).digest('hex');
      const stored = await store.addCapabilities(tenant, deviceId, json, digest, clock.now());
      if (stored.changed && deps.capabilitiesStored) {
        await deps
          .capabilitiesStored(tenant, deviceId, stored.version, report)
          .catch((err: unknown) =>
            logger.warn({ err: String(err), deviceId }, 'capability change not propagated'),
          );
      }
      return stored;
    },

    async getCapabilities(tenant, deviceId) {
      await deps.deviceExists(tenant, deviceId);
      const r = await store.latestCapabilities(tenant, deviceId);
      if (!r) throw new AppError('ERR_CAPABILITIES_NOT_FOUND');
      return capabilityOf(r);
    },

    async listCapabilities(tenant, deviceId, opts = {}) {
      await deps.deviceExists(tenant, deviceId);
      const limit = Math.min(Math.max(opts.limit ?? 20, 1), 100);
      let beforeVersion: number | undefined;
      if (opts.cursor !== undefined) {
        if (!/^[1-9][0-9]{0,14}$/.test(opts.cursor)) throw new AppError('ERR_PAGE_CURSOR');
        beforeVersion = Number(opts.cursor);
      }
      const rows = await store.listCapabilities(tenant, deviceId, {
        limit: limit + 1,
        ...(beforeVersion !== undefined ? { beforeVersion } : {}),
      });
      const page = rows.slice(0, limit);
      const last = page[page.length - 1];
      return {
        items: page.map(capabilityOf),
        nextCursor: rows.length > limit && last ? String(last.version) : null,
      };
    },

    async deviceConnected(tenant, deviceId) {
      const k = key(tenant, deviceId);
      if (retained.has(k)) return;
      const row = await store.getTwin(tenant, deviceId);
      if (!row || row.desiredVersion === 0 || retained.has(k)) return;
      await publishDesired(
        tenant,
        deviceId,
        row.desiredVersion,
        JSON.parse(row.desired) as Record<string, unknown>,
      );
    },

    async deviceDeleted(tenant, deviceId) {
      await store.deleteDevice(tenant, deviceId);
      const k = key(tenant, deviceId);
      if (retained.delete(k)) {
        // [MQTT-3.3.1-10] an empty retained message removes the retained one.
        await deps.publish({
          topic: topics.twinDesired(deviceId),
          payload: Buffer.alloc(0),
          qos: 0,
          retain: true,
        });
      }
      for (const [id, w] of waiters) {
        if (w.tenant === tenant && w.deviceId === deviceId)
          finish(id, { id, status: 'failed', error: 'device deleted' });
      }
    },

    close() {
      for (const id of [...waiters.keys()]) finish(id, { id, status: 'timeout' });
    },
  };
}
