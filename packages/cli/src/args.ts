// Command-line parsing against a table of command specs. No dependency: the grammar is small.
//   bulwark [global flags] <command> [<subcommand>] [positionals] [flags]
// Flags: `--name value`, `--name=value`, boolean `--name`, `-h` for help; `--` ends flags.
// Global flags are accepted anywhere; a command's own flags only after the command.

import { UsageError } from './errors.ts';

export type FlagType = 'string' | 'boolean';

export interface FlagSpec {
  readonly type: FlagType;
  readonly description: string;
  /** Placeholder shown in help, e.g. `N`, `FILE`. */
  readonly value?: string;
  /** May be given more than once; the values are collected in order. */
  readonly multiple?: boolean;
}

export interface PositionalSpec {
  readonly name: string;
  readonly description: string;
}

export interface CommandSpec {
  /** e.g. ['device', 'create'] */
  readonly path: readonly string[];
  readonly summary: string;
  readonly positionals: readonly PositionalSpec[];
  readonly flags: Readonly<Record<string, FlagSpec>>;
  readonly examples?: readonly string[];
  /** Extra help text shown after the flags. */
  readonly notes?: string;
}

export type FlagValue = string | boolean | string[];
export type Flags = Readonly<Record<string, FlagValue | undefined>>;

export type ParseResult<C extends CommandSpec> =
  | { kind: 'version' }
  | { kind: 'help'; command: C | undefined; group: string | undefined }
  | { kind: 'run'; command: C; positionals: Readonly<Record<string, string>>; flags: Flags };

export const globalFlags: Readonly<Record<string, FlagSpec>> = {
  url: {
    type: 'string',
    value: 'URL',
    description: 'platform URL, e.g. https://bulwark.example:8443 (env BULWARK_URL)',
  },
  token: { type: 'string', value: 'TOKEN', description: 'API token (env BULWARK_TOKEN)' },
  'ca-file': {
    type: 'string',
    value: 'FILE',
    description: 'PEM file with the CA that signed the server certificate (env BULWARK_CA_FILE)',
  },
  json: { type: 'boolean', description: 'print the API JSON on stdout instead of tables' },
  help: { type: 'boolean', description: 'show help' },
  version: { type: 'boolean', description: 'print the CLI version' },
};

/** Groups are the first word of multi-word commands (`device`, `cert`). */
export function commandGroups(commands: readonly CommandSpec[]): Set<string> {
  return new Set(commands.filter((c) => c.path.length > 1).map((c) => c.path[0] as string));
}

export function parseArgs<C extends CommandSpec>(
  argv: readonly string[],
  commands: readonly C[],
): ParseResult<C> {
  const groups = commandGroups(commands);
  const words: string[] = [];
  const raw: { name: string; value: string | undefined; token: string }[] = [];
  let command: C | undefined;
  let group: string | undefined;
  // --help anywhere (before `--`) wins over any error in the rest of the line.
  const end = argv.indexOf('--');
  let help = (end === -1 ? argv : argv.slice(0, end)).some((t) => t === '--help' || t === '-h');
  let version = false;
  let endOfFlags = false;

  const resolveCommand = (): void => {
    if (command !== undefined) return;
    const first = words[0];
    if (first === undefined) return;
    if (groups.has(first)) {
      group = first;
      const second = words[1];
      if (second === undefined) return;
      command = commands.find((c) => c.path.length === 2 && c.path[0] === first && c.path[1] === second);
      if (command === undefined) {
        if (help) return;
        const subs = commands.filter((c) => c.path[0] === first).map((c) => c.path[1] as string);
        throw new UsageError(`unknown command '${first} ${second}'${didYouMean(second, subs)}`, [first]);
      }
      words.splice(0, 2);
    } else {
      command = commands.find((c) => c.path.length === 1 && c.path[0] === first);
      if (command === undefined) {
        if (help) return;
        const names = [...new Set(commands.map((c) => c.path[0] as string))];
        throw new UsageError(`unknown command '${first}'${didYouMean(first, names)}`);
      }
      words.splice(0, 1);
    }
  };

  const specFor = (name: string): FlagSpec | undefined =>
    globalFlags[name] ?? (command === undefined ? undefined : command.flags[name]);

  for (let i = 0; i < argv.length; i++) {
    const token = argv[i] as string;
    if (endOfFlags || token === '-' || !token.startsWith('-')) {
      words.push(token);
      if (command === undefined) resolveCommand();
      continue;
    }
    if (token === '--') {
      endOfFlags = true;
      continue;
    }
    if (token === '-h') {
      help = true;
      continue;
    }
    if (!token.startsWith('--') || token.length === 2) {
      throw new UsageError(`unknown flag '${token}'`, command?.path);
    }
    const eq = token.indexOf('=');
    const name = eq === -1 ? token.slice(2) : token.slice(2, eq);
    const spec = specFor(name);
    if (spec === undefined) {
      if (help) continue;
      const known = [...Object.keys(globalFlags), ...Object.keys(command?.flags ?? {})];
      const where = command === undefined ? '' : ` for '${command.path.join(' ')}'`;
      throw new UsageError(
        `unknown flag '--${name}'${where}${didYouMean(name, known, '--')}`,
        command?.path ?? (group === undefined ? undefined : [group]),
      );
    }
    if (spec.type === 'boolean') {
      if (eq !== -1) throw new UsageError(`flag '--${name}' takes no value`, command?.path);
      if (name === 'help') help = true;
      else if (name === 'version') version = true;
      raw.push({ name, value: undefined, token });
      continue;
    }
    let value: string | undefined;
    if (eq !== -1) {
      value = token.slice(eq + 1);
    } else {
      value = argv[i + 1];
      // `--token -` means stdin; any other dash-led word is most likely a forgotten value.
      if (value === undefined || (value.startsWith('-') && value !== '-' && !/^-\d/.test(value))) {
        if (help) continue;
        throw new UsageError(`flag '--${name}' needs a value (${spec.value ?? 'VALUE'})`, command?.path);
      }
      i++;
    }
    raw.push({ name, value, token });
  }

  if (version && command === undefined && !help) return { kind: 'version' };
  if (help || command === undefined) {
    if (!help && group !== undefined) {
      throw new UsageError(`'${group}' needs a subcommand`, [group]);
    }
    return { kind: 'help', command, group };
  }

  const flags: Record<string, FlagValue> = {};
  for (const { name, value } of raw) {
    const spec = specFor(name) as FlagSpec;
    if (spec.type === 'boolean') {
      flags[name] = true;
    } else if (spec.multiple === true) {
      const list = (flags[name] as string[] | undefined) ?? [];
      list.push(value as string);
      flags[name] = list;
    } else {
      if (flags[name] !== undefined)
        throw new UsageError(`flag '--${name}' given more than once`, command.path);
      flags[name] = value as string;
    }
  }

  const positionals: Record<string, string> = {};
  for (const p of command.positionals) {
    const v = words.shift();
    if (v === undefined) throw new UsageError(`missing <${p.name}>`, command.path);
    positionals[p.name] = v;
  }
  if (words.length > 0) {
    throw new UsageError(`unexpected argument '${words[0] as string}'`, command.path);
  }
  return { kind: 'run', command, positionals, flags };
}

export function flagString(flags: Flags, name: string): string | undefined {
  const v = flags[name];
  return typeof v === 'string' ? v : undefined;
}

export function flagBool(flags: Flags, name: string): boolean {
  return flags[name] === true;
}

export function flagList(flags: Flags, name: string): string[] {
  const v = flags[name];
  return Array.isArray(v) ? v : typeof v === 'string' ? [v] : [];
}

/** Parses an integer flag within [min, max]; undefined when absent. */
export function flagInt(
  flags: Flags,
  name: string,
  command: readonly string[],
  min = 1,
  max = Number.MAX_SAFE_INTEGER,
): number | undefined {
  const v = flagString(flags, name);
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v) || Number(v) < min || Number(v) > max) {
    throw new UsageError(`--${name} must be a whole number from ${min} to ${max}, got '${v}'`, command);
  }
  return Number(v);
}

function didYouMean(input: string, candidates: readonly string[], prefix = ''): string {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const c of candidates) {
    const d = editDistance(input, c);
    if (d < bestDistance) {
      bestDistance = d;
      best = c;
    }
  }
  return best !== undefined && bestDistance <= Math.max(1, Math.floor(input.length / 3))
    ? ` (did you mean '${prefix}${best}'?)`
    : '';
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      cur.push(Math.min((prev[j] as number) + 1, (cur[j - 1] as number) + 1, (prev[j - 1] as number) + cost));
    }
    prev = cur;
  }
  return prev[b.length] as number;
}
