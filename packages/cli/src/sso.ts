// Single sign-on from a terminal (bulwark login --sso), the way RFC 8252 has native apps do it: the CLI
// listens on a loopback address, the person signs in in a browser, and the browser brings the result
// back to the CLI. The platform is the OIDC client (it holds the client secret and checks the ID
// token); the CLI proves it is the one that started the sign-in with its own PKCE verifier when it
// exchanges the one-time code for a short-lived personal token.

import { spawn } from 'node:child_process';
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { CliError } from './errors.ts';
import { createApiClient } from './http.ts';

export interface SsoLoginOptions {
  url: string;
  ca?: string | undefined;
  /** Tenant to sign in to; the platform's own when absent. */
  tenant?: string | undefined;
  userAgent: string;
  /** Shows the sign-in link (and opens a browser unless told not to). */
  present(browserUrl: string): void;
  progress(text: string): void;
  signal: AbortSignal;
  /** How long to wait for the browser. Default 5 minutes. */
  timeoutMs?: number;
}

export interface SsoLoginResult {
  secret: string;
  token: { id: string; expiresAt: string | null };
  account: { id: string; name: string; tenant: string; role: string; fleet: string | null };
  mfa: boolean;
}

const PAGE = (title: string, text: string) =>
  `<!doctype html><html><head><meta charset="utf-8"><title>${title}</title></head><body><p>${text}</p></body></html>`;

function reply(res: ServerResponse, status: number, title: string, text: string): void {
  res.writeHead(status, {
    'content-type': 'text/html; charset=utf-8',
    'cache-control': 'no-store',
    'content-security-policy': "default-src 'none'",
    'referrer-policy': 'no-referrer',
  });
  res.end(PAGE(title, text));
}

const sameString = (a: string, b: string) => {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
};

/** Runs the whole sign-in; resolves with the personal token, or throws a CliError saying why not. */
export async function ssoLogin(opts: SsoLoginOptions): Promise<SsoLoginResult> {
  const verifier = randomBytes(32).toString('base64url'); // 43 characters, RFC 7636 §4.1
  const challenge = createHash('sha256').update(verifier).digest('base64url');
  const state = randomBytes(24).toString('base64url');

  let settle: { resolve(v: { code: string }): void; reject(e: Error): void } | undefined;
  const outcome = new Promise<{ code: string }>((resolve, reject) => {
    settle = { resolve, reject };
  });
  // Settled maybe before anyone awaits it (timeout, Ctrl-C): not an unhandled rejection.
  outcome.catch(() => {});
  let expectedHost = '';
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    // Only the browser coming back, addressed exactly as the redirect said (no DNS rebinding).
    const u = new URL(req.url ?? '/', 'http://127.0.0.1');
    if (req.method !== 'GET' || u.pathname !== '/callback' || req.headers.host !== expectedHost) {
      reply(res, 404, 'Not found', 'Nothing here.');
      return;
    }
    const got = u.searchParams.get('state') ?? '';
    // Some other page made the browser call us: ignore it and keep waiting for the real answer.
    if (!sameString(got, state)) {
      reply(res, 400, 'Unexpected sign-in', 'This answer belongs to no sign-in started here.');
      return;
    }
    const error = u.searchParams.get('error');
    const code = u.searchParams.get('code');
    if (error !== null) {
      reply(res, 200, 'Sign-in refused', 'The platform refused the sign-in; see the terminal for why.');
      settle?.reject(new CliError(`single sign-on refused: ${error.slice(0, 64)}`));
      return;
    }
    if (code === null) {
      reply(res, 400, 'No code', 'The answer carries no code.');
      return;
    }
    reply(
      res,
      200,
      'Signed in',
      'Signed in to Bulwark. You can close this window and return to the terminal.',
    );
    settle?.resolve({ code });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  expectedHost = `127.0.0.1:${port}`;
  const redirectUri = `http://${expectedHost}/callback`;

  const client = createApiClient({ url: opts.url, token: undefined, ca: opts.ca, userAgent: opts.userAgent });
  const timeoutMs = opts.timeoutMs ?? 300_000;
  const timer = setTimeout(
    () => settle?.reject(new CliError(`no sign-in within ${Math.round(timeoutMs / 1000)} s`)),
    timeoutMs,
  );
  const onAbort = () => settle?.reject(new CliError('sign-in interrupted'));
  opts.signal.addEventListener('abort', onAbort, { once: true });
  try {
    const start = await client.ops.postAuthCliStart({
      body: {
        ...(opts.tenant !== undefined ? { tenant: opts.tenant } : {}),
        redirectUri,
        codeChallenge: challenge,
        codeChallengeMethod: 'S256',
        state,
      },
    });
    opts.present(start.browserUrl);
    opts.progress('waiting for the browser…');
    const { code } = await outcome;
    opts.progress('signed in; fetching a token…');
    const r = await client.ops.postAuthCliToken({ body: { code, codeVerifier: verifier } });
    return {
      secret: r.secret,
      token: { id: r.token.id, expiresAt: r.token.expiresAt },
      account: r.account,
      mfa: r.mfa,
    };
  } finally {
    clearTimeout(timer);
    opts.signal.removeEventListener('abort', onAbort);
    client.close();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

/** Opens a URL in the person's browser, if there is one; failures are silent (the link is printed). */
export function openInBrowser(url: string, platform: NodeJS.Platform = process.platform): void {
  const [cmd, args] =
    platform === 'darwin'
      ? ['open', [url]]
      : platform === 'win32'
        ? ['rundll32', ['url.dll,FileProtocolHandler', url]]
        : ['xdg-open', [url]];
  try {
    const child = spawn(cmd, args, { stdio: 'ignore', detached: true });
    child.on('error', () => {});
    child.unref();
  } catch {
    // no browser here: the printed link is enough
  }
}
