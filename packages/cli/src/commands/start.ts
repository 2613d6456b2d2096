// bulwark start: run the platform server in the foreground.
// Packages never import apps, so the server is found at run time and run as a child process.

import { spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { flagString } from '../args.ts';
import type { Command, Context } from '../context.ts';
import { CliError } from '../errors.ts';

export const SERVER_ENTRY = '@bulwark/server/main';

/** The server's entry file, or undefined when the server package is not installed. */
export function resolveServerEntry(
  resolver: (specifier: string) => string = (s) => import.meta.resolve(s),
): string | undefined {
  try {
    return fileURLToPath(resolver(SERVER_ENTRY));
  } catch {
    return undefined;
  }
}

/** Runs `node <entry> [args]` with inherited stdio, forwarding interrupts; resolves with its exit code. */
export function runServer(ctx: Context, entry: string, args: readonly string[]): Promise<number> {
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, [entry, ...args], {
      stdio: 'inherit',
      env: { ...ctx.io.env },
      cwd: ctx.io.cwd,
    });
    const forward = (): void => {
      const reason: unknown = ctx.io.signal.reason;
      child.kill(reason === 'SIGINT' || reason === 'SIGTERM' ? reason : 'SIGTERM');
    };
    ctx.io.signal.addEventListener('abort', forward, { once: true });
    child.on('error', (err) => {
      ctx.io.signal.removeEventListener('abort', forward);
      fail(new CliError(`cannot start the server: ${err.message}`, { cause: err }));
    });
    child.on('exit', (code, signal) => {
      ctx.io.signal.removeEventListener('abort', forward);
      if (code !== null) done(code);
      else done(signal === 'SIGINT' ? 130 : signal === 'SIGTERM' ? 143 : 1);
    });
  });
}

const start: Command = {
  path: ['start'],
  summary: 'Start the platform server in the foreground (Ctrl-C stops it).',
  positionals: [],
  flags: { config: { type: 'string', value: 'FILE', description: 'server configuration file' } },
  examples: ['bulwark start', 'bulwark start --config /etc/bulwark/server.json'],
  notes:
    'Needs the server package (@bulwark/server) installed next to the CLI. The server reads its\n' +
    'settings from the file and from BULWARK_* environment variables.',
  async run(ctx) {
    const entry = resolveServerEntry();
    if (entry === undefined) {
      throw new CliError(`the platform server package is not installed (cannot resolve ${SERVER_ENTRY})`, {
        hint: 'install @bulwark/server next to @bulwark/cli, or run the server from its repository with `npm start`',
      });
    }
    const config = flagString(ctx.flags, 'config');
    ctx.io.catchInterrupts();
    return runServer(ctx, entry, config === undefined ? [] : ['--config', resolve(ctx.io.cwd, config)]);
  },
};

export const startCommands: Command[] = [start];
