// A real OpenID Connect provider (node-oidc-provider) on loopback for SSO tests, and a small simulated
// browser: cookies per site, redirects followed by hand, the provider's login and consent forms filled.
import 'reflect-metadata';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import Provider from 'oidc-provider';

export interface TestIdp {
  issuer: string;
  /** Groups each user gets; change them between sign-ins. */
  users: Record<string, { groups?: string[] }>;
  close(): Promise<void>;
}

/** The provider's configuration: one confidential client `bulwark` with PKCE, users with group claims. */
export function providerConfiguration(opts: {
  redirectUris: string[];
  users: TestIdp['users'];
  clientSecret: string;
}): ConstructorParameters<typeof Provider>[1] {
  const users = opts.users;
  return {
    clients: [
      {
        client_id: 'bulwark',
        client_secret: opts.clientSecret,
        redirect_uris: opts.redirectUris,
        grant_types: ['authorization_code'],
        response_types: ['code'],
      },
    ],
    async findAccount(_ctx, id) {
      return {
        accountId: id,
        async claims() {
          const u = users[id] ?? {};
          return { sub: id, preferred_username: id, ...(u.groups ? { groups: u.groups } : {}) };
        },
      };
    },
    claims: { openid: ['sub'], profile: ['preferred_username'], groups: ['groups'] },
    scopes: ['openid', 'profile', 'groups'],
    conformIdTokenClaims: false,
    pkce: { required: () => true },
    ttl: { IdToken: 60 },
    features: { devInteractions: { enabled: true } },
  };
}

export async function startIdp(opts: {
  redirectUris: string[];
  users: TestIdp['users'];
  clientSecret: string;
}): Promise<TestIdp> {
  const server: Server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const users = opts.users;
  const provider = new Provider(issuer, providerConfiguration(opts));
  server.on('request', provider.callback());
  return {
    issuer,
    users,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

/**
 * Follows a sign-in through the provider from its authorization URL until the provider redirects to a
 * URL starting with `until` (the platform's callback); signs in as `user` on the provider's forms.
 */
export async function throughIdp(authorizationUrl: string, user: string, until: string): Promise<string> {
  const jar = new Map<string, string>();
  const remember = (res: Response) => {
    for (const c of res.headers.getSetCookie()) {
      const [pair] = c.split(';');
      const eq = (pair ?? '').indexOf('=');
      jar.set((pair ?? '').slice(0, eq), (pair ?? '').slice(eq + 1));
    }
  };
  const cookie = () => [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
  let url = authorizationUrl;
  for (let hops = 0; hops < 20; hops++) {
    if (url.startsWith(until)) return url;
    let res = await fetch(url, { redirect: 'manual', headers: { cookie: cookie() } });
    remember(res);
    if (res.status === 200 && url.includes('/interaction/')) {
      const html = await res.text();
      const prompt = /name="prompt" value="(\w+)"/.exec(html)?.[1] ?? 'login';
      const form = new URLSearchParams({
        prompt,
        ...(prompt === 'login' ? { login: user, password: 'x' } : {}),
      });
      res = await fetch(url, {
        method: 'POST',
        redirect: 'manual',
        body: form,
        headers: { cookie: cookie() },
      });
      remember(res);
    }
    const location = res.headers.get('location');
    if (!location) throw new Error(`no redirect from ${url}: ${res.status} ${await res.text()}`);
    url = new URL(location, url).toString();
  }
  throw new Error('too many redirects');
}
