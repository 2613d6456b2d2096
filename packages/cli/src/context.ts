// What a command gets to work with: its parsed arguments, the process streams and a lazily built API client.

import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { CommandSpec, Flags } from './args.ts';
import { flagString } from './args.ts';
import type { ConnectionSettings, Env } from './config.ts';
import { loadLogin, MissingSettingError, resolveSettings } from './config.ts';
import { CliError, EXIT_USAGE } from './errors.ts';
import type { ApiClient } from './http.ts';
import { createApiClient, parseBaseUrl } from './http.ts';
import { formatJson } from './output.ts';

export interface Io {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  stdin: NodeJS.ReadableStream;
  env: Env;
  cwd: string;
  /** Aborted on SIGINT/SIGTERM (the reason is the signal name), once the command called catchInterrupts. */
  signal: AbortSignal;
  /**
   * Long-running commands (telemetry --follow, start) call this to end cleanly through `signal`;
   * for every other command an interrupt ends the process at once.
   */
  catchInterrupts(): void;
}

export interface Context {
  readonly io: Io;
  readonly command: CommandSpec;
  readonly positionals: Readonly<Record<string, string>>;
  readonly flags: Flags;
  /** --json: stdout carries only JSON. */
  readonly json: boolean;
  readonly version: string;
  out(text: string): void;
  printJson(value: unknown): void;
  /** Progress and notes for people, on stderr (so stdout stays clean for pipes). */
  progress(text: string): void;
  warn(text: string): void;
  /** URL, token and CA from flags, environment and the saved login. */
  settings(): Promise<ResolvedSettings>;
  api(): Promise<ApiClient>;
  /** Closes the API client, if one was made. */
  close(): void;
}

export interface Command extends CommandSpec {
  run(ctx: Context): Promise<number | void>;
}

export interface ResolvedSettings extends ConnectionSettings {
  /** PEM read from caFile. */
  ca?: string;
}

export function createContext(
  io: Io,
  command: Command,
  positionals: Readonly<Record<string, string>>,
  flags: Flags,
  version: string,
): Context {
  let client: ApiClient | undefined;
  let settings: Promise<ResolvedSettings> | undefined;
  const ctx: Context = {
    io,
    command,
    positionals,
    flags,
    json: flags.json === true,
    version,
    out: (text) => void io.stdout.write(text),
    printJson: (value) => void io.stdout.write(formatJson(value)),
    progress: (text) => void io.stderr.write(`${text}\n`),
    warn: (text) => void io.stderr.write(`warning: ${text}\n`),
    settings: () => (settings ??= loadSettings(ctx)),
    async api() {
      if (client !== undefined) return client;
      const s = await ctx.settings();
      client = createApiClient({ url: s.url, token: s.token, ca: s.ca, userAgent: `bulwark-cli/${version}` });
      return client;
    },
    close() {
      client?.close();
    },
  };
  return ctx;
}

async function loadSettings(ctx: Context): Promise<ResolvedSettings> {
  const { flags, io } = ctx;
  const saved = await loadLogin(io.env);
  if (saved?.warning !== undefined) ctx.warn(saved.warning);
  let s: ConnectionSettings;
  try {
    s = resolveSettings({
      flags: {
        url: flagString(flags, 'url'),
        token: flagString(flags, 'token'),
        caFile: flagString(flags, 'ca-file'),
      },
      env: io.env,
      saved: saved?.login,
    });
  } catch (err) {
    if (err instanceof MissingSettingError) throw new CliError(err.message, { exitCode: EXIT_USAGE });
    throw err;
  }
  return completeSettings(s, io);
}

/** Validates the URL, reads `--token -` from stdin and the CA file. */
export async function completeSettings(s: ConnectionSettings, io: Io): Promise<ResolvedSettings> {
  try {
    parseBaseUrl(s.url);
  } catch (err) {
    throw new CliError(`invalid URL: ${(err as Error).message}`, { exitCode: EXIT_USAGE });
  }
  const token = s.token === '-' ? await readTokenFromStdin(io) : s.token;
  if (token === '' || /[\s]/.test(token)) {
    throw new CliError('the API token is empty or contains white space', { exitCode: EXIT_USAGE });
  }
  const result: ResolvedSettings = { url: s.url, token };
  if (s.caFile !== undefined) {
    const caFile = resolve(io.cwd, s.caFile);
    result.caFile = caFile;
    result.ca = await readCaFile(caFile);
  }
  return result;
}

export async function readCaFile(path: string): Promise<string> {
  let pem: string;
  try {
    pem = await readFile(path, 'utf8');
  } catch (err) {
    throw new CliError(`cannot read CA file ${path}: ${(err as Error).message}`, {
      exitCode: EXIT_USAGE,
      hint: 'BULWARK_CA_FILE / --ca-file must name the PEM file of the platform CA',
    });
  }
  if (!pem.includes('-----BEGIN CERTIFICATE-----')) {
    throw new CliError(`CA file ${path} holds no PEM certificate`, { exitCode: EXIT_USAGE });
  }
  return pem;
}

const MAX_TOKEN_BYTES = 64 * 1024;

async function readTokenFromStdin(io: Io): Promise<string> {
  if ((io.stdin as { isTTY?: boolean }).isTTY === true) {
    io.stderr.write('paste the API token, then press Enter and Ctrl-D:\n');
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of io.stdin) {
    const buf = typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer);
    size += buf.length;
    if (size > MAX_TOKEN_BYTES)
      throw new CliError('the token on stdin is too long', { exitCode: EXIT_USAGE });
    chunks.push(buf);
  }
  return Buffer.concat(chunks).toString('utf8').trim();
}
