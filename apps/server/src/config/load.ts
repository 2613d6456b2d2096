import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { resolve } from 'node:path';
import { AppError } from '../kernel/index.ts';
import { options, type Config, type OptionSpec } from './schema.ts';

export type { Config } from './schema.ts';
export { options } from './schema.ts';

const HOSTNAME =
  /^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
const TENANT = /^[a-z0-9][a-z0-9-]{0,62}$/;

function getPath(obj: unknown, key: string): unknown {
  let cur = obj;
  for (const part of key.split('.')) {
    if (typeof cur !== 'object' || cur === null) return undefined;
    cur = (cur as Record<string, unknown>)[part];
  }
  return cur;
}

function setPath(obj: Record<string, unknown>, key: string, value: unknown): void {
  const parts = key.split('.');
  let cur = obj;
  for (const part of parts.slice(0, -1)) {
    cur[part] ??= {};
    cur = cur[part] as Record<string, unknown>;
  }
  cur[parts[parts.length - 1] as string] = value;
}

function knownKeys(obj: unknown, prefix = ''): string[] {
  if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) return [prefix];
  return Object.entries(obj).flatMap(([k, v]) =>
    typeof v === 'object' && v !== null && !Array.isArray(v)
      ? knownKeys(v, `${prefix}${k}.`)
      : [`${prefix}${k}`],
  );
}

function parse(spec: OptionSpec, raw: unknown, source: string, problems: string[]): unknown {
  const where = `${spec.key} (${source})`;
  const str = typeof raw === 'number' ? String(raw) : raw;
  switch (spec.type) {
    case 'port':
    case 'integer': {
      if (typeof str !== 'string' || !/^\d+$/.test(str.trim())) {
        problems.push(`${where}: must be a whole number, got ${JSON.stringify(raw)}`);
        return undefined;
      }
      const n = Number(str);
      const [min, max] =
        spec.type === 'port' ? [0, 65535] : [spec.min ?? 0, spec.max ?? Number.MAX_SAFE_INTEGER];
      if (n < min || n > max) {
        problems.push(`${where}: must be between ${min} and ${max}, got ${n}`);
        return undefined;
      }
      return n;
    }
    case 'hostnames': {
      const list = Array.isArray(raw) ? raw : typeof raw === 'string' ? raw.split(',') : undefined;
      if (!list) {
        problems.push(`${where}: must be a comma-separated list or an array of host names`);
        return undefined;
      }
      const names = list.map((h) => String(h).trim()).filter((h) => h.length > 0);
      if (names.length === 0) problems.push(`${where}: at least one host name is required`);
      for (const h of names) {
        if (!isIP(h) && !HOSTNAME.test(h))
          problems.push(`${where}: ${JSON.stringify(h)} is not a DNS name or IP address`);
      }
      return names;
    }
    case 'enum':
      if (typeof str !== 'string' || !spec.values?.includes(str)) {
        problems.push(`${where}: must be one of ${spec.values?.join(', ')}, got ${JSON.stringify(raw)}`);
        return undefined;
      }
      return str;
    case 'database-url':
      if (typeof str !== 'string' || !/^(sqlite:.+|postgres(ql)?:\/\/.+)$/.test(str)) {
        problems.push(`${where}: must start with sqlite: or postgres://`);
        return undefined;
      }
      return str;
    case 'string':
    case 'path':
      if (typeof str !== 'string') {
        problems.push(`${where}: must be a string`);
        return undefined;
      }
      return str;
  }
}

export interface LoadOptions {
  env?: NodeJS.ProcessEnv;
  /** Path of a JSON config file; defaults to BULWARK_CONFIG. */
  file?: string;
  /** Values that win over everything (tests). */
  overrides?: Record<string, unknown>;
}

/** defaults <- file <- env <- overrides; validates everything and lists every problem at once; frozen. */
export function loadConfig(opts: LoadOptions = {}): Config {
  const env = opts.env ?? process.env;
  const problems: string[] = [];
  const filePath = opts.file ?? env.BULWARK_CONFIG;
  let file: unknown = {};
  if (filePath) {
    try {
      file = JSON.parse(readFileSync(filePath, 'utf8'));
    } catch (err) {
      problems.push(`config file ${filePath}: ${(err as Error).message}`);
    }
    const known = new Set(options.map((o) => o.key));
    for (const k of knownKeys(file)) if (k && !known.has(k)) problems.push(`${k} (file): unknown option`);
  }
  const known = new Set(options.map((o) => o.env));
  for (const name of Object.keys(env)) {
    if (
      name.startsWith('BULWARK_') &&
      !known.has(name) &&
      !['BULWARK_CONFIG', 'BULWARK_URL', 'BULWARK_TOKEN', 'BULWARK_CA_FILE', 'BULWARK_CONFIG_DIR'].includes(
        name,
      ) &&
      !name.startsWith('BULWARK_TEST_')
    ) {
      problems.push(`${name} (env): unknown variable`);
    }
  }
  const out: Record<string, unknown> = {};
  for (const spec of options) {
    let raw: unknown = spec.default;
    let source = 'default';
    const fromFile = getPath(file, spec.key);
    if (fromFile !== undefined) {
      raw = fromFile;
      source = 'file';
    }
    const fromEnv = env[spec.env];
    if (fromEnv !== undefined && fromEnv !== '') {
      raw = fromEnv;
      source = spec.env;
    }
    if (opts.overrides && spec.key in opts.overrides) {
      raw = opts.overrides[spec.key];
      source = 'override';
    }
    setPath(out, spec.key, parse(spec, raw, source, problems));
  }
  const dataDir = resolve(String(out.dataDir ?? './data'));
  out.dataDir = dataDir;
  const db = out.database as { url?: string };
  if (db.url) db.url = db.url.replace('${dataDir}', dataDir);
  if (typeof out.tenant === 'string' && !TENANT.test(out.tenant)) {
    problems.push(`tenant: must be lower-case letters, digits and '-', got ${JSON.stringify(out.tenant)}`);
  }
  const secrets = out.secrets as { masterKey?: string };
  if (secrets.masterKey && Buffer.from(secrets.masterKey, 'base64').length !== 32) {
    problems.push('secrets.masterKey (BULWARK_MASTER_KEY): must be the base64 of exactly 32 bytes');
  }
  if (problems.length > 0) {
    throw new AppError(
      'ERR_CONFIG_INVALID',
      `Invalid configuration (${problems.length} problem${problems.length > 1 ? 's' : ''})`,
      {
        errors: problems.map((p) => ({ path: p.split(' ')[0] ?? '', message: p })),
      },
    );
  }
  return deepFreeze(out) as unknown as Config;
}

function deepFreeze<T>(o: T): T {
  if (typeof o === 'object' && o !== null) {
    for (const v of Object.values(o)) deepFreeze(v);
    Object.freeze(o);
  }
  return o;
}
