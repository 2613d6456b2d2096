// bulwark simulate: a fleet of simulated devices built on the device SDK (@bulwark/device). Each has its
// own key (made here) and a certificate it gets over EST (RFC 7030) with an enrollment code, as a real
// device would; it sends telemetry, answers commands and follows its twin, until Ctrl-C.

import { join, resolve } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { rootCertificates } from 'node:tls';
import {
  createDevice,
  EnrollmentError,
  estEnroller,
  hasCertificate,
  type DeviceClient,
  type Enroller,
} from '@bulwark/device';
import { flagBool, flagInt, flagString } from '../args.ts';
import type { Command } from '../context.ts';
import { CliError, UsageError } from '../errors.ts';
import type { ApiClient } from '../http.ts';

export interface SimulationStats {
  devices: number;
  /** Devices that got their certificate over EST in this run, and those that had one from an earlier run. */
  enrolled: { est: number; reused: number };
  connected: number;
  sent: number;
  acked: number;
  errors: number;
  commands: number;
  updates: { succeeded: number; failed: number };
}

interface SimDevice {
  client: DeviceClient;
  firmware: string;
  temperature: number;
  battery: number;
}

const PREFIX_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,100}$/;
/** Devices enrolling (and making their first connection) at once. */
const ENROLL_CONCURRENCY = 16;
/** How long one device's first connection may hold up the next device's start. */
const FIRST_CONNECT_WAIT_MS = 5000;
/** How long the simulator's fleet code stays valid; it is revoked as soon as every device has enrolled. */
const CODE_TTL_SECONDS = 3600;

interface CreatedCode {
  id: string;
  code: string;
}

/**
 * EST enrollment for the simulated devices: a fleet code (quota = the devices that need a certificate)
 * for new devices; a device the platform already knows (its state directory was deleted) cannot take
 * itself over with a fleet code, so it gets a one-time code bound to its id, which re-provisions it.
 */
function simulatorEnroller(opts: {
  api: ApiClient;
  url: string;
  ca: string;
  tenant: string | undefined;
  fleetCode: CreatedCode | undefined;
  onEnrolled(): void;
}): Enroller {
  const est = (code?: string) =>
    estEnroller({
      url: opts.url,
      ca: opts.ca,
      ...(opts.tenant !== undefined ? { tenant: opts.tenant } : {}),
      ...(code !== undefined ? { code } : {}),
    });
  const renewing = est();
  const enrolling = est(opts.fleetCode?.code);
  return {
    async enroll(req) {
      let result;
      try {
        result = await enrolling.enroll(req);
      } catch (err) {
        if (!(err instanceof EnrollmentError && err.code === 'ERR_EST_DEVICE_EXISTS')) throw err;
        const own = (
          await opts.api.request('POST', '/enrollment-codes', {
            body: { deviceId: req.deviceId, ttlSeconds: 600 },
          })
        ).body as CreatedCode;
        result = await est(own.code).enroll(req);
      }
      opts.onEnrolled();
      return result;
    },
    renew: (req) => renewing.renew(req),
  };
}

/** Transient: worth another try (network, overload); a refusal (bad code, device disabled) is not. */
function transient(err: unknown): boolean {
  if (!(err instanceof EnrollmentError)) return true;
  return err.status === 429 || err.status >= 500;
}

function defaultMqttUrl(apiUrl: string, websocket: boolean): string {
  const u = new URL(apiUrl);
  return websocket
    ? `wss://${u.host}/mqtt`
    : `mqtts://${u.hostname.includes(':') ? `[${u.hostname}]` : u.hostname}:8883`;
}

/** Deals `perSecond` messages over ticks: the fraction left over carries to the next tick, so rates below 1/tick work. */
export function createRateClock(perSecond: number, tickMs: number): () => number {
  let carry = 0;
  return () => {
    carry += (perSecond * tickMs) / 1000;
    const n = Math.floor(carry);
    carry -= n;
    return n;
  };
}

function formatStats(s: SimulationStats, rate: number): string {
  return (
    `devices ${s.connected}/${s.devices} connected · sent ${s.sent} · acked ${s.acked} · errors ${s.errors}` +
    ` · commands ${s.commands} · updates ${s.updates.succeeded} ok/${s.updates.failed} failed · ${rate.toFixed(1)} msg/s`
  );
}

const simulate: Command = {
  path: ['simulate'],
  summary: 'Run simulated devices (device SDK): telemetry at a total rate, commands, twin; Ctrl-C stops.',
  positionals: [],
  flags: {
    devices: { type: 'string', value: 'N', description: 'number of devices (1-10000, default 10)' },
    rate: {
      type: 'string',
      value: 'R',
      description: 'telemetry messages per second, all devices together (default 10)',
    },
    'fail-ota': {
      type: 'string',
      value: 'P',
      description: 'probability (0-1) that a firmware update (twin desired.firmware) fails (default 0)',
    },
    prefix: { type: 'string', value: 'NAME', description: 'device ids are <prefix>-0001, ... (default sim)' },
    fleet: {
      type: 'string',
      value: 'PATH',
      description: 'fleet new devices enroll into (it must exist; default none)',
    },
    'state-dir': {
      type: 'string',
      value: 'DIR',
      description: 'keys and certificates, reused on the next run (default ./.bulwark-sim)',
    },
    'mqtt-url': {
      type: 'string',
      value: 'URL',
      description: 'mqtts://host:8883 or wss://host:8443/mqtt (default: the API host, port 8883)',
    },
    websocket: { type: 'boolean', description: 'connect over MQTT over WebSocket on the API port' },
    duration: { type: 'string', value: 'SECONDS', description: 'stop by itself after this long' },
  },
  examples: [
    'bulwark simulate --devices 50 --rate 100',
    'bulwark simulate --devices 5000 --rate 500 --fleet lab   # enrolls 16 at a time',
    'bulwark simulate --devices 5 --rate 1 --fail-ota 0.2 --duration 60 --json',
    'bulwark simulate --devices 20 --websocket   # over wss://<host>:8443/mqtt',
  ],
  notes:
    'Each device gets its own P-256 key, made here, and enrolls over EST (/.well-known/est/simpleenroll)\n' +
    'with a fleet enrollment code the simulator creates (quota = devices without a certificate, revoked\n' +
    'once they have enrolled; the token needs certs:enroll-codes). Key and certificate are kept under\n' +
    '--state-dir, so the next run reuses them; renewals go over EST simplereenroll.\n' +
    'Devices answer every command: ping -> "pong", anything else -> {ok: true, name, payload}. Setting\n' +
    'desired.firmware in a twin simulates an update, reported back in the twin (fails with --fail-ota).\n' +
    'Progress goes to stderr; with --json the final counts are printed to stdout.',
  async run(ctx) {
    const n = flagInt(ctx.flags, 'devices', ctx.command.path, 1, 10_000) ?? 10;
    const rateText = flagString(ctx.flags, 'rate');
    const rate = rateText === undefined ? 10 : Number(rateText);
    if (!Number.isFinite(rate) || rate < 0 || rate > 100_000) {
      throw new UsageError(
        '--rate must be a number of messages per second from 0 to 100000',
        ctx.command.path,
      );
    }
    const failText = flagString(ctx.flags, 'fail-ota');
    const failOta = failText === undefined ? 0 : Number(failText);
    if (!Number.isFinite(failOta) || failOta < 0 || failOta > 1) {
      throw new UsageError('--fail-ota must be a probability from 0 to 1', ctx.command.path);
    }
    const prefix = flagString(ctx.flags, 'prefix') ?? 'sim';
    if (!PREFIX_PATTERN.test(prefix)) throw new UsageError(`invalid --prefix '${prefix}'`, ctx.command.path);
    const fleet = flagString(ctx.flags, 'fleet') ?? '';
    const durationText = flagString(ctx.flags, 'duration');
    const duration = durationText === undefined ? undefined : Number(durationText);
    if (duration !== undefined && (!Number.isFinite(duration) || duration <= 0)) {
      throw new UsageError('--duration must be a positive number of seconds', ctx.command.path);
    }
    const stateDir = resolve(ctx.io.cwd, flagString(ctx.flags, 'state-dir') ?? '.bulwark-sim');
    const settings = await ctx.settings();
    const websocket = flagBool(ctx.flags, 'websocket');
    const mqttUrl = flagString(ctx.flags, 'mqtt-url') ?? defaultMqttUrl(settings.url, websocket);
    if (!/^(mqtts|wss):\/\//.test(mqttUrl)) {
      throw new UsageError('--mqtt-url must be mqtts://host:port or wss://host:port/mqtt', ctx.command.path);
    }

    ctx.io.catchInterrupts();
    const signal = ctx.io.signal;
    const stats: SimulationStats = {
      devices: n,
      enrolled: { est: 0, reused: 0 },
      connected: 0,
      sent: 0,
      acked: 0,
      errors: 0,
      commands: 0,
      updates: { succeeded: 0, failed: 0 },
    };
    const warnings = new Map<string, number>();
    const noteError = (err: Error) => {
      stats.errors++;
      const key = err.message.slice(0, 120);
      const seen = warnings.get(key) ?? 0;
      warnings.set(key, seen + 1);
      if (seen === 0 && !ctx.json) ctx.warn(err.message);
    };
    const sims: SimDevice[] = [];
    const ids = Array.from({ length: n }, (_, i) => `${prefix}-${String(i + 1).padStart(4, '0')}`);
    const tty = (ctx.io.stderr as { isTTY?: boolean }).isTTY === true;

    // Devices with a certificate from an earlier run reuse it; the others enroll over EST.
    const fresh = new Set<string>();
    for (const id of ids) if (!(await hasCertificate(join(stateDir, id)))) fresh.add(id);
    stats.enrolled.reused = n - fresh.size;
    const api = await ctx.api();
    let fleetCode: CreatedCode | undefined;
    let tenant: string | undefined;
    if (fresh.size > 0) {
      // The EST path names the tenant the code was made in (the token's).
      tenant = await api
        .request('GET', '/whoami')
        .then((r) => (r.body as { tenant?: unknown }).tenant)
        .then((t) => (typeof t === 'string' ? t : undefined))
        .catch(() => undefined);
      try {
        fleetCode = (
          await api.request('POST', '/enrollment-codes', {
            body: { fleet, quota: fresh.size, ttlSeconds: CODE_TTL_SECONDS },
          })
        ).body as CreatedCode;
      } catch (err) {
        throw new CliError(`could not create an enrollment code: ${(err as Error).message}`, {
          hint: 'the token needs certs:enroll-codes; with --fleet, the fleet must exist',
        });
      }
    }
    const revokeCode = async () => {
      if (!fleetCode) return;
      const id = fleetCode.id;
      fleetCode = undefined;
      await api.request('POST', `/enrollment-codes/${encodeURIComponent(id)}/revoke`).catch(() => {});
    };
    const enroller = simulatorEnroller({
      api,
      url: settings.url,
      // EST verifies the platform against an explicit trust anchor; without a CA file, the system's roots.
      ca: settings.ca ?? rootCertificates.join('\n'),
      tenant,
      fleetCode,
      onEnrolled: () => void stats.enrolled.est++,
    });

    const makeDevice = async (id: string): Promise<SimDevice> => {
      const client = createDevice({
        deviceId: id,
        url: mqttUrl,
        stateDir: join(stateDir, id),
        enroller,
        ...(settings.ca !== undefined ? { ca: settings.ca } : {}),
        outbox: { persistent: false, maxBytes: 1024 * 1024, whenFull: 'drop-oldest' },
        backoff: { baseMs: 500, maxMs: 15_000 },
        capabilities: {
          hardware: { model: 'bulwark-sim', revision: '1' },
          firmware: { version: '1.0.0' },
          updateMethod: 'simulated',
          reportOnConnect: true,
        },
      });
      const sim: SimDevice = {
        client,
        firmware: '1.0.0',
        temperature: 18 + Math.random() * 6,
        battery: 60 + Math.random() * 40,
      };
      client.on('connect', () => stats.connected++);
      client.on('disconnect', () => stats.connected--);
      client.on('warning', noteError);
      client.onCommand('ping', () => {
        stats.commands++;
        return 'pong';
      });
      client.onCommand('*', (payload, c) => {
        stats.commands++;
        return { ok: true, name: c.name, ...(payload !== undefined ? { payload } : {}) };
      });
      client.onDesired(async (state, version) => {
        const target = typeof state.firmware === 'string' ? state.firmware : undefined;
        if (target === undefined || target === sim.firmware) {
          await client.reportTwin({ ...state, firmware: sim.firmware }, { desiredVersion: version });
          return;
        }
        await delay(200 + Math.random() * 800); // "downloading and installing"
        const failed = Math.random() < failOta;
        if (failed) stats.updates.failed++;
        else {
          stats.updates.succeeded++;
          sim.firmware = target;
        }
        await client.reportTwin(
          {
            ...state,
            firmware: sim.firmware,
            lastUpdate: failed ? `failed: ${target}` : `installed: ${target}`,
          },
          { desiredVersion: version },
        );
      });
      await client.start();
      return sim;
    };

    /** Starts a device; an enrollment that failed for a passing reason is tried again (three times). */
    const startDevice = async (id: string): Promise<SimDevice> => {
      for (let attempt = 1; ; attempt++) {
        try {
          return await makeDevice(id);
        } catch (err) {
          if (attempt >= 3 || !transient(err) || signal.aborted) throw err;
          await delay(500 * attempt + Math.random() * 500);
        }
      }
    };

    // A few devices at a time enroll and make their first connection, so that a large fleet neither
    // floods EST nor sets off a reconnect storm of its own.
    if (!ctx.json) {
      ctx.progress(
        `starting ${n} devices (${fresh.size} to enroll over EST, state in ${stateDir}), MQTT at ${mqttUrl}…`,
      );
    }
    const startedAt = Date.now();
    const showStart = (final = false) => {
      if (ctx.json) return;
      const secs = Math.max(0.001, (Date.now() - startedAt) / 1000);
      const line =
        `enrolled ${stats.enrolled.est}/${fresh.size} over EST (${(stats.enrolled.est / secs).toFixed(1)}/s)` +
        ` · started ${sims.length}/${n} · connected ${stats.connected}`;
      if (tty) ctx.io.stderr.write(`\r\x1b[2K${line}${final ? '\n' : ''}`);
      else ctx.io.stderr.write(`${line}\n`);
    };
    const ticker = setInterval(showStart, tty ? 500 : 5000);
    let next = 0;
    const workers = Array.from({ length: Math.min(ENROLL_CONCURRENCY, n) }, async () => {
      while (next < ids.length && !signal.aborted) {
        const id = ids[next++] as string;
        const sim = await startDevice(id);
        sims.push(sim);
        await sim.client.waitConnected(FIRST_CONNECT_WAIT_MS).catch(() => {});
      }
    });
    try {
      await Promise.all(workers);
    } catch (err) {
      await Promise.all(sims.map((s) => s.client.close()));
      throw new CliError(`could not start device: ${(err as Error).message}`, {
        hint: 'the token needs certs:enroll-codes; is the MQTT URL right?',
      });
    } finally {
      clearInterval(ticker);
      await revokeCode();
    }
    if (fresh.size > 0 || tty) showStart(true);

    const tickMs = 100;
    const due = createRateClock(rate, tickMs);
    let cursor = 0;
    const started = Date.now();
    let lastShown = 0;
    let lastAcked = 0;
    let lastAt = started;
    const show = (final = false) => {
      const now = Date.now();
      const r = ((stats.acked - lastAcked) * 1000) / Math.max(1, now - lastAt);
      lastAcked = stats.acked;
      lastAt = now;
      const line = formatStats(stats, r);
      if (ctx.json) return;
      if (tty && !final) ctx.io.stderr.write(`\r\x1b[2K${line}`);
      else ctx.io.stderr.write(`${tty ? '\r\x1b[2K' : ''}${line}\n`);
    };
    const deadline = duration === undefined ? Infinity : started + duration * 1000;
    while (!signal.aborted && Date.now() < deadline) {
      for (let k = due(); k > 0; k--) {
        // Round robin over the devices that are connected; offline ones would only fill their outbox.
        let picked: SimDevice | undefined;
        for (let tries = 0; tries < sims.length; tries++) {
          const s = sims[cursor++ % sims.length];
          if (s?.client.connected) {
            picked = s;
            break;
          }
        }
        if (!picked) break;
        const s = picked;
        s.temperature += (Math.random() - 0.5) * 0.4;
        s.battery = Math.max(0, s.battery - Math.random() * 0.01);
        stats.sent++;
        s.client
          .telemetry({
            temperature: Math.round(s.temperature * 100) / 100,
            battery: Math.round(s.battery * 10) / 10,
            firmware: s.firmware,
          })
          .then(
            () => void stats.acked++,
            (err: Error) => {
              if (err.name !== 'DeviceClosedError') noteError(err);
            },
          );
      }
      if (Date.now() - lastShown >= (tty ? 1000 : 5000)) {
        show();
        lastShown = Date.now();
      }
      try {
        await delay(tickMs, undefined, { signal });
      } catch {
        break;
      }
    }
    if (!ctx.json) ctx.progress(`${tty ? '\n' : ''}stopping ${n} devices…`);
    await Promise.all(sims.map((s) => s.client.close()));
    show(true);
    if (ctx.json)
      ctx.printJson({ ...stats, connected: 0, seconds: Math.round((Date.now() - started) / 1000) });
  },
};

export const simulateCommands: Command[] = [simulate];
