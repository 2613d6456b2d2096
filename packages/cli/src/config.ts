// The saved login ({ url, token, caFile }) and how flags, environment and the saved login combine.
// The file holds a bearer token: it is written 0600 inside a 0700 directory, atomically (temp file + rename)
// so it never exists with wider permissions or half-written.

import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rename, rm, stat, unlink, chmod } from 'node:fs/promises';
import { homedir } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';
import { CliError } from './errors.ts';
import { parseBaseUrl } from './http.ts';

export type Env = Readonly<Record<string, string | undefined>>;

export interface SavedLogin {
  url: string;
  token: string;
  caFile?: string;
  /** Set by `bulwark login --sso`: the personal token it got, which expires and is revoked on logout. */
  sso?: { tokenId: string; expiresAt: string | null; tenant: string; account: string };
}

export const CONFIG_FILE = 'config.json';

/** `$BULWARK_CONFIG_DIR`, else `$XDG_CONFIG_HOME/bulwark`, else `~/.config/bulwark`. */
export function configDir(env: Env): string {
  if (nonEmpty(env.BULWARK_CONFIG_DIR)) return resolve(env.BULWARK_CONFIG_DIR);
  // The XDG spec says relative values are invalid and must be ignored.
  if (nonEmpty(env.XDG_CONFIG_HOME) && isAbsolute(env.XDG_CONFIG_HOME))
    return join(env.XDG_CONFIG_HOME, 'bulwark');
  return join(nonEmpty(env.HOME) ? env.HOME : homedir(), '.config', 'bulwark');
}

export function configPath(env: Env): string {
  return join(configDir(env), CONFIG_FILE);
}

export interface LoadedLogin {
  login: SavedLogin;
  path: string;
  /** Set when the file is readable by group or others. */
  warning?: string;
}

export async function loadLogin(env: Env): Promise<LoadedLogin | undefined> {
  const path = configPath(env);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new CliError(`cannot read ${path}: ${(err as Error).message}`, { cause: err });
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    throw new CliError(`${path} is not valid JSON`, {
      hint: 'run `bulwark login` again, or delete the file',
    });
  }
  const login = parseSavedLogin(data);
  if (login === undefined) {
    throw new CliError(`${path} does not hold a login ({ url, token, caFile? })`, {
      hint: 'run `bulwark login` again, or delete the file',
    });
  }
  const mode = (await stat(path)).mode & 0o777;
  const result: LoadedLogin = { login, path };
  if ((mode & 0o077) !== 0 && process.platform !== 'win32') {
    result.warning = `${path} holds a token and is readable by others (mode ${mode.toString(8)}); run: chmod 600 ${path}`;
  }
  return result;
}

function parseSavedLogin(data: unknown): SavedLogin | undefined {
  if (typeof data !== 'object' || data === null) return undefined;
  const { url, token, caFile, sso } = data as Record<string, unknown>;
  if (typeof url !== 'string' || typeof token !== 'string') return undefined;
  if (caFile !== undefined && typeof caFile !== 'string') return undefined;
  const login: SavedLogin = caFile === undefined ? { url, token } : { url, token, caFile };
  if (sso !== undefined) {
    const s = sso as Record<string, unknown> | null;
    if (
      typeof s !== 'object' ||
      s === null ||
      typeof s.tokenId !== 'string' ||
      (s.expiresAt !== null && typeof s.expiresAt !== 'string') ||
      typeof s.tenant !== 'string' ||
      typeof s.account !== 'string'
    )
      return undefined;
    login.sso = { tokenId: s.tokenId, expiresAt: s.expiresAt, tenant: s.tenant, account: s.account };
  }
  return login;
}

/** Saves the login; returns the file path. */
export async function saveLogin(env: Env, login: SavedLogin): Promise<string> {
  const dir = configDir(env);
  const created = await mkdir(dir, { recursive: true, mode: 0o700 });
  // mkdir's mode is filtered by the umask; make the directory we created exactly 0700.
  // A directory that already existed (maybe one the user chose) is left as it is.
  if (created !== undefined) await chmod(dir, 0o700);
  const path = join(dir, CONFIG_FILE);
  const tmp = join(dir, `.${CONFIG_FILE}.${randomBytes(6).toString('hex')}.tmp`);
  const handle = await open(tmp, 'wx', 0o600);
  try {
    await handle.writeFile(JSON.stringify(login, null, 2) + '\n');
    await handle.sync();
  } catch (err) {
    await handle.close();
    await unlink(tmp).catch(() => {});
    throw err;
  }
  await handle.close();
  await rename(tmp, path);
  return path;
}

/** Removes the saved login; returns the path when there was one. */
export async function removeLogin(env: Env): Promise<string | undefined> {
  const path = configPath(env);
  try {
    await stat(path);
  } catch {
    return undefined;
  }
  await rm(path, { force: true });
  return path;
}

export interface ConnectionSettings {
  url: string;
  token: string;
  caFile?: string;
}

export interface SettingSources {
  flags: { url?: string | undefined; token?: string | undefined; caFile?: string | undefined };
  env: Env;
  saved: SavedLogin | undefined;
}

/** Where a setting is missing: what to tell the user. */
export class MissingSettingError extends Error {
  override readonly name = 'MissingSettingError';
}

/**
 * Flags win over environment, environment over the saved login. The saved token and CA file are used only
 * when the URL in effect is the saved URL: a token saved for one server is never sent to another.
 */
export function resolveSettings({ flags, env, saved }: SettingSources): ConnectionSettings {
  const url = flags.url ?? nonEmptyOr(env.BULWARK_URL) ?? saved?.url;
  if (url === undefined) {
    throw new MissingSettingError('no server URL: pass --url, set BULWARK_URL, or run `bulwark login`');
  }
  const savedApplies = saved !== undefined && sameServer(saved.url, url);
  const explicit = flags.token ?? nonEmptyOr(env.BULWARK_TOKEN);
  const expiresAt = saved?.sso?.expiresAt;
  if (explicit === undefined && savedApplies && expiresAt && Date.parse(expiresAt) <= Date.now()) {
    throw new MissingSettingError(
      `the single sign-on saved for ${saved.url} ended at ${expiresAt}: run \`bulwark login --sso\` again`,
    );
  }
  const token = explicit ?? (savedApplies ? saved.token : undefined);
  if (token === undefined) {
    const extra =
      saved !== undefined && !savedApplies ? ` (the saved login is for ${saved.url}, not ${url})` : '';
    throw new MissingSettingError(
      `no API token: pass --token, set BULWARK_TOKEN, or run \`bulwark login\`${extra}`,
    );
  }
  const caFile = flags.caFile ?? nonEmptyOr(env.BULWARK_CA_FILE) ?? (savedApplies ? saved.caFile : undefined);
  return caFile === undefined ? { url, token } : { url, token, caFile };
}

function sameServer(a: string, b: string): boolean {
  try {
    return parseBaseUrl(a).href === parseBaseUrl(b).href;
  } catch {
    return a === b;
  }
}

function nonEmpty(v: string | undefined): v is string {
  return v !== undefined && v !== '';
}

function nonEmptyOr(v: string | undefined): string | undefined {
  return nonEmpty(v) ? v : undefined;
}
