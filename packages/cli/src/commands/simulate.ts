// bulwark simulate: a fleet of simulated devices built on the device SDK (@bulwark/device). Each has its
// own key (made here) and certificate (API enrollment; EST once the platform offers it to the SDK),
// sends telemetry, answers commands and follows its twin, until Ctrl-C.

import { join, resolve } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { apiEnroller, createDevice, type DeviceClient } from '@bulwark/device';
import { flagBool, flagInt, flagString } from '../args.ts';
import type { Command } from '../context.ts';
import { CliError, UsageError } from '../errors.ts';

export interface SimulationStats {
  devices: number;
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
    'bulwark simulate --devices 5 --rate 1 --fail-ota 0.2 --duration 60 --json',
    'bulwark simulate --devices 20 --websocket   # over wss://<host>:8443/mqtt',
  ],
  notes:
    'Each device gets its own P-256 key, made here, and a certificate through the API (the token needs\n' +
    'devices:write and certs:issue); both are kept under --state-dir, so the next run reuses them.\n' +
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
    const enroller = apiEnroller({
      url: settings.url,
      token: settings.token,
      ...(settings.ca !== undefined ? { ca: settings.ca } : {}),
      register: true,
      attributes: { simulated: 'true' },
    });
    const sims: SimDevice[] = [];
    const ids = Array.from({ length: n }, (_, i) => `${prefix}-${String(i + 1).padStart(4, '0')}`);

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

    // Enrollment: a few at a time, so the first run of a large fleet does not flood the API.
    if (!ctx.json) ctx.progress(`starting ${n} devices (state in ${stateDir}), MQTT at ${mqttUrl}…`);
    let next = 0;
    const workers = Array.from({ length: Math.min(8, n) }, async () => {
      while (next < ids.length && !signal.aborted) {
        const id = ids[next++] as string;
        sims.push(await makeDevice(id));
      }
    });
    try {
      await Promise.all(workers);
    } catch (err) {
      await Promise.all(sims.map((s) => s.client.close()));
      throw new CliError(`could not start device: ${(err as Error).message}`, {
        hint: 'the token needs devices:write and certs:issue; is the MQTT URL right?',
      });
    }

    const tickMs = 100;
    const due = createRateClock(rate, tickMs);
    let cursor = 0;
    const started = Date.now();
    let lastShown = 0;
    let lastAcked = 0;
    let lastAt = started;
    const tty = (ctx.io.stderr as { isTTY?: boolean }).isTTY === true;
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
