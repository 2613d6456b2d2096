// bulwark login | logout | whoami

import { resolve } from 'node:path';
import { flagBool, flagInt, flagString } from '../args.ts';
import { configPath, loadLogin, removeLogin, resolveSettings, saveLogin } from '../config.ts';
import type { Command, Context } from '../context.ts';
import { completeSettings, readCaFile } from '../context.ts';
import { UsageError } from '../errors.ts';
import { createApiClient, parseBaseUrl } from '../http.ts';
import { formatKeyValues } from '../output.ts';
import { openInBrowser, ssoLogin } from '../sso.ts';

/** `bulwark login --sso`: the organisation's identity provider, through a browser, back to this terminal. */
async function loginSso(ctx: Context): Promise<void> {
  const url = flagString(ctx.flags, 'url') ?? ctx.io.env.BULWARK_URL;
  if (url === undefined || url === '') throw new UsageError('missing --url', ctx.command.path);
  if (flagString(ctx.flags, 'token') !== undefined)
    throw new UsageError('--sso and --token exclude each other', ctx.command.path);
  let normalized: string;
  try {
    normalized = parseBaseUrl(url).href.replace(/\/$/, '');
  } catch (err) {
    throw new UsageError(`invalid URL: ${(err as Error).message}`, ctx.command.path);
  }
  const caFlag = flagString(ctx.flags, 'ca-file') ?? ctx.io.env.BULWARK_CA_FILE;
  const caFile = caFlag === undefined || caFlag === '' ? undefined : resolve(ctx.io.cwd, caFlag);
  const ca = caFile === undefined ? undefined : await readCaFile(caFile);
  const timeout = flagInt(ctx.flags, 'timeout', ctx.command.path, 10, 3600);
  const noBrowser = flagBool(ctx.flags, 'no-browser');
  ctx.io.catchInterrupts();
  const r = await ssoLogin({
    url: normalized,
    ca,
    tenant: flagString(ctx.flags, 'tenant'),
    userAgent: `bulwark-cli/${ctx.version}`,
    present(browserUrl) {
      ctx.progress(`open this link in a browser to sign in (valid 10 minutes, once):\n\n  ${browserUrl}\n`);
      if (!noBrowser) openInBrowser(browserUrl);
    },
    progress: (t) => ctx.progress(t),
    signal: ctx.io.signal,
    ...(timeout !== undefined ? { timeoutMs: timeout * 1000 } : {}),
  });
  const path = await saveLogin(ctx.io.env, {
    url: normalized,
    token: r.secret,
    ...(caFile === undefined ? {} : { caFile }),
    sso: {
      tokenId: r.token.id,
      expiresAt: r.token.expiresAt,
      tenant: r.account.tenant,
      account: r.account.id,
    },
  });
  if (ctx.json) {
    ctx.printJson({
      account: r.account,
      mfa: r.mfa,
      tokenId: r.token.id,
      expiresAt: r.token.expiresAt,
      path,
    });
    return;
  }
  ctx.out(
    `logged in to ${normalized} as ${r.account.name} (role ${r.account.role}, tenant ${r.account.tenant}) by single sign-on` +
      `${r.mfa ? ' with a second factor' : ''}; the token ends at ${r.token.expiresAt ?? 'never'}\n`,
  );
  ctx.progress(`saved to ${path} (mode 0600)`);
}

const login: Command = {
  path: ['login'],
  summary:
    'Sign in: with single sign-on in a browser (--sso), or check a URL and token; either is saved for later commands.',
  positionals: [],
  flags: {
    sso: {
      type: 'boolean',
      description: "sign in with the organisation's identity provider in a browser (a short-lived token)",
    },
    tenant: {
      type: 'string',
      value: 'TENANT',
      description: "with --sso: the tenant (default: the platform's)",
    },
    'no-browser': { type: 'boolean', description: 'with --sso: only print the link, open no browser' },
    timeout: {
      type: 'string',
      value: 'SECONDS',
      description: 'with --sso: how long to wait for the browser (default 300)',
    },
  },
  examples: [
    'bulwark login --sso --url https://bulwark.example:8443 --ca-file ./ca.crt',
    'bulwark login --sso --tenant acme --no-browser --url https://bulwark.example:8443',
    'bulwark login --url https://bulwark.example:8443 --ca-file ./ca.crt --token -   # token on stdin',
    'pass show bulwark/token | bulwark login --url https://localhost:8443 --ca-file data/pki/ca.crt --token -',
  ],
  notes:
    'The login is saved in $BULWARK_CONFIG_DIR, $XDG_CONFIG_HOME/bulwark or ~/.config/bulwark (config.json,\n' +
    'mode 0600). Prefer --token - (stdin): a token on the command line ends up in the shell history.\n' +
    'A saved token is only ever sent to the URL it was saved for.\n' +
    "--sso listens on 127.0.0.1 (a random port) for the browser's answer and proves with its own PKCE\n" +
    'verifier that it started the sign-in; the personal token it gets lasts 12 hours and is revoked by\n' +
    '`bulwark logout`.',
  async run(ctx) {
    if (flagBool(ctx.flags, 'sso')) return loginSso(ctx);
    for (const f of ['tenant', 'no-browser', 'timeout'])
      if (ctx.flags[f] !== undefined) throw new UsageError(`--${f} goes with --sso`, ctx.command.path);
    const url = flagString(ctx.flags, 'url') ?? ctx.io.env.BULWARK_URL;
    const token = flagString(ctx.flags, 'token') ?? ctx.io.env.BULWARK_TOKEN;
    if (url === undefined || url === '') throw new UsageError('missing --url', ctx.command.path);
    if (token === undefined || token === '')
      throw new UsageError('missing --token (use --token - to read it from stdin)', ctx.command.path);
    const caFile = flagString(ctx.flags, 'ca-file') ?? ctx.io.env.BULWARK_CA_FILE;
    const settings = await completeSettings(
      resolveSettings({ flags: { url, token, caFile }, env: {}, saved: undefined }),
      ctx.io,
    );
    const normalized = parseBaseUrl(settings.url).href.replace(/\/$/, '');
    const client = createApiClient({
      url: normalized,
      token: settings.token,
      ca: settings.ca,
      userAgent: `bulwark-cli/${ctx.version}`,
    });
    let who;
    try {
      ctx.progress(`checking ${normalized}…`);
      who = await client.whoami();
    } finally {
      client.close();
    }
    const path = await saveLogin(ctx.io.env, {
      url: normalized,
      token: settings.token,
      ...(settings.caFile === undefined ? {} : { caFile: settings.caFile }),
    });
    if (ctx.json) {
      ctx.printJson(who);
      return;
    }
    ctx.out(
      `logged in to ${normalized} as ${who.name} (${who.kind}, role ${who.role}, tenant ${who.tenant})\n`,
    );
    ctx.progress(`saved to ${path}`);
  },
};

const logout: Command = {
  path: ['logout'],
  summary:
    'Forget the saved login; a single sign-on token is revoked on the server too (any other token stays valid).',
  positionals: [],
  flags: {},
  async run(ctx) {
    const saved = await loadLogin(ctx.io.env).catch(() => undefined);
    const sso = saved?.login.sso;
    if (saved && sso) {
      // Best effort: a token nobody holds any more should not stay valid for hours.
      const client = createApiClient({
        url: saved.login.url,
        token: saved.login.token,
        ca:
          saved.login.caFile === undefined
            ? undefined
            : await readCaFile(saved.login.caFile).catch(() => undefined),
        userAgent: `bulwark-cli/${ctx.version}`,
        timeoutMs: 10_000,
      });
      try {
        await client.ops.deleteAccountsByAccountIdTokensByTokenId({
          params: { accountId: 'me', tokenId: sso.tokenId },
        });
        ctx.progress(`revoked the single sign-on token ${sso.tokenId}`);
      } catch (err) {
        ctx.warn(`could not revoke the single sign-on token on the server: ${(err as Error).message}`);
      } finally {
        client.close();
      }
    }
    const removed = await removeLogin(ctx.io.env);
    if (ctx.json) {
      ctx.printJson({ removed: removed !== undefined, path: configPath(ctx.io.env) });
      return;
    }
    ctx.out(removed === undefined ? 'not logged in\n' : `removed ${removed}\n`);
  },
};

const whoami: Command = {
  path: ['whoami'],
  summary: 'Show who the token belongs to.',
  positionals: [],
  flags: {},
  async run(ctx) {
    const api = await ctx.api();
    const who = await api.whoami();
    if (ctx.json) {
      ctx.printJson(who);
      return;
    }
    ctx.out(
      formatKeyValues([
        ['name', who.name],
        ['id', who.id],
        ['kind', who.kind],
        ['role', who.role],
        ['tenant', who.tenant],
        ['server', api.baseUrl],
      ]),
    );
  },
};

export const loginCommands: Command[] = [login, logout, whoami];
