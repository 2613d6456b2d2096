// Parse, dispatch, map errors to exit codes. `run` never calls process.exit, so tests can call it directly.

import { readFileSync } from 'node:fs';
import type { CommandSpec } from './args.ts';
import { globalFlags, parseArgs } from './args.ts';
import { commands } from './commands/index.ts';
import type { Io } from './context.ts';
import { createContext } from './context.ts';
import { CliError, EXIT_CONNECTION, EXIT_FAILURE, EXIT_OK, EXIT_USAGE, UsageError } from './errors.ts';
import { ApiError, ConnectionError } from './http.ts';
import { clean } from './output.ts';

export function cliVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  return pkg.version;
}

export async function run(argv: readonly string[], io: Io): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs(argv, commands);
  } catch (err) {
    return reportError(err, io);
  }
  const version = cliVersion();
  if (parsed.kind === 'version') {
    io.stdout.write(`bulwark ${version}\n`);
    return EXIT_OK;
  }
  if (parsed.kind === 'help') {
    io.stdout.write(parsed.command !== undefined ? commandHelp(parsed.command) : mainHelp(parsed.group));
    return EXIT_OK;
  }
  const ctx = createContext(io, parsed.command, parsed.positionals, parsed.flags, version);
  try {
    return (await parsed.command.run(ctx)) ?? EXIT_OK;
  } catch (err) {
    return reportError(err, io);
  } finally {
    ctx.close();
  }
}

/** Prints `error: ...` (and a hint) on stderr; returns the exit code. */
export function reportError(err: unknown, io: Io): number {
  const write = (line: string): void => void io.stderr.write(line + '\n');
  if (err instanceof UsageError) {
    write(`error: ${err.message}`);
    const cmd =
      err.command === undefined
        ? undefined
        : commands.find((c) => c.path.join(' ') === err.command?.join(' '));
    if (cmd !== undefined) {
      write(`usage: ${usageLine(cmd)}`);
      write(`run 'bulwark ${cmd.path.join(' ')} --help' for more`);
    } else if (err.command !== undefined && err.command.length === 1) {
      write(`run 'bulwark ${err.command[0] as string} --help' for its commands`);
    } else {
      write("run 'bulwark --help' for the list of commands");
    }
    return EXIT_USAGE;
  }
  if (err instanceof ApiError) {
    const p = err.problem;
    const detail = p.detail === undefined || p.detail === '' ? '' : `: ${clean(p.detail)}`;
    write(`error: ${clean(p.title)}${detail} (${clean(p.code)})`);
    for (const e of p.errors ?? []) write(`  - ${clean(String(e.path))}: ${clean(String(e.message))}`);
    const hint = hintForCode(p.code);
    if (hint !== undefined) write(`hint: ${hint}`);
    if (p.requestId !== undefined) write(`request id: ${clean(String(p.requestId))}`);
    return EXIT_FAILURE;
  }
  if (err instanceof ConnectionError) {
    write(`error: ${err.message} (${err.code})`);
    write(`hint: ${err.hint}`);
    return EXIT_CONNECTION;
  }
  if (err instanceof CliError) {
    write(`error: ${err.message}`);
    if (err.hint !== undefined) write(`hint: ${err.hint}`);
    return err.exitCode;
  }
  const e = err as Error;
  write(`error: ${e?.message ?? String(err)}`);
  if (io.env.BULWARK_DEBUG !== undefined && e?.stack !== undefined) write(e.stack);
  return EXIT_FAILURE;
}

function hintForCode(code: string): string | undefined {
  switch (code) {
    case 'ERR_AUTH_MISSING':
    case 'ERR_AUTH_INVALID_TOKEN':
      return 'check BULWARK_TOKEN / --token, or run `bulwark login` again';
    case 'ERR_POLICY_DENIED':
      return 'your token is not allowed to do this; `bulwark whoami` shows who you are';
    case 'ERR_DEVICE_EXISTS':
      return 'to issue a new certificate for the existing device, add --existing';
    case 'ERR_DEVICE_DISABLED':
      return 'enable it first: bulwark device enable <id>';
    case 'ERR_RATE_LIMITED':
      return 'wait a moment and try again';
    default:
      return undefined;
  }
}

export function usageLine(cmd: CommandSpec): string {
  const pos = cmd.positionals.map((p) => `<${p.name}>`).join(' ');
  return ['bulwark', ...cmd.path, pos, Object.keys(cmd.flags).length > 0 ? '[options]' : '']
    .filter((s) => s !== '')
    .join(' ');
}

function flagLines(flags: CommandSpec['flags']): string[] {
  const entries = Object.entries(flags).map(([name, f]) => {
    const left = `--${name}${f.type === 'string' ? ` ${f.value ?? 'VALUE'}` : ''}`;
    return [left, f.description + (f.multiple === true ? ' (repeatable)' : '')] as const;
  });
  const w = Math.max(0, ...entries.map(([l]) => l.length));
  return entries.map(([l, d]) => `  ${l.padEnd(w)}  ${d}`);
}

export function commandHelp(cmd: CommandSpec): string {
  const lines = [`usage: ${usageLine(cmd)}`, '', cmd.summary];
  if (cmd.positionals.length > 0) {
    lines.push('', 'arguments:');
    const w = Math.max(...cmd.positionals.map((p) => p.name.length + 2));
    for (const p of cmd.positionals) lines.push(`  ${`<${p.name}>`.padEnd(w)}  ${p.description}`);
  }
  if (Object.keys(cmd.flags).length > 0) lines.push('', 'options:', ...flagLines(cmd.flags));
  lines.push('', 'global options:', ...flagLines(globalFlags));
  if (cmd.notes !== undefined) lines.push('', cmd.notes);
  if (cmd.examples !== undefined && cmd.examples.length > 0) {
    lines.push('', 'examples:', ...cmd.examples.map((e) => `  ${e}`));
  }
  return lines.join('\n') + '\n';
}

export function mainHelp(group?: string): string {
  const shown = group === undefined ? commands : commands.filter((c) => c.path[0] === group);
  const names = shown.map((c) => [
    c.path.join(' ') + ' ' + c.positionals.map((p) => `<${p.name}>`).join(' '),
    c.summary,
  ]);
  const w = Math.max(...names.map(([n]) => (n as string).trimEnd().length));
  const lines =
    group === undefined
      ? [
          'bulwark — operate a Bulwark IoT platform from the terminal',
          '',
          'usage: bulwark <command> [arguments] [options]',
          '',
          'commands:',
        ]
      : [`usage: bulwark ${group} <command> [arguments] [options]`, '', `${group} commands:`];
  for (const [n, s] of names) lines.push(`  ${(n as string).trimEnd().padEnd(w)}  ${s as string}`);
  lines.push('', 'global options:', ...flagLines(globalFlags));
  lines.push(
    '',
    'Connection settings come from the flags, else BULWARK_URL / BULWARK_TOKEN / BULWARK_CA_FILE,',
    'else the login saved by `bulwark login`.',
    'Exit codes: 0 ok, 1 the API or an operation failed, 2 usage error, 3 cannot connect / TLS.',
    `Run 'bulwark <command> --help' for a command's options.`,
  );
  return lines.join('\n') + '\n';
}

export { EXIT_CONNECTION, EXIT_FAILURE, EXIT_OK, EXIT_USAGE };
