// bulwark login | logout | whoami

import { flagString } from '../args.ts';
import { configPath, removeLogin, resolveSettings, saveLogin } from '../config.ts';
import type { Command } from '../context.ts';
import { completeSettings } from '../context.ts';
import { UsageError } from '../errors.ts';
import { createApiClient, parseBaseUrl } from '../http.ts';
import { formatKeyValues } from '../output.ts';

const login: Command = {
  path: ['login'],
  summary: 'Check a URL and token against the platform and save them for later commands.',
  positionals: [],
  flags: {},
  examples: [
    'bulwark login --url https://bulwark.example:8443 --ca-file ./ca.crt --token -   # token on stdin',
    'pass show bulwark/token | bulwark login --url https://localhost:8443 --ca-file data/pki/ca.crt --token -',
  ],
  notes:
    'The login is saved in $BULWARK_CONFIG_DIR, $XDG_CONFIG_HOME/bulwark or ~/.config/bulwark (config.json,\n' +
    'mode 0600). Prefer --token - (stdin): a token on the command line ends up in the shell history.\n' +
    'A saved token is only ever sent to the URL it was saved for.',
  async run(ctx) {
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
  summary: 'Forget the saved login (the token itself stays valid on the server).',
  positionals: [],
  flags: {},
  async run(ctx) {
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
