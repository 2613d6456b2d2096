// OpenID Connect relying party on openid-client (by the author of node-oidc-provider): discovery, the
// authorization code grant with PKCE, and every ID token check (issuer, audience, signature against
// the provider's JWKS, expiry, nonce, the `iss` authorization response parameter of RFC 9207).
import * as client from 'openid-client';
import { AppError } from '../../kernel/index.ts';
import type { IdpConfig, OidcRelyingParty } from './model.ts';

export interface OidcClientOptions {
  /** The platform clock: ID token times are checked against it. */
  now(): number;
  /** Allow http:// issuers (loopback test providers only; sso.ts enforces the loopback part). */
  allowInsecure: boolean;
  timeoutSeconds?: number;
}

export function createOidcRelyingParty(opts: OidcClientOptions): OidcRelyingParty {
  // Discovery documents, cached briefly: keys rotate, endpoints rarely change.
  const cache = new Map<string, { at: number; server: client.ServerMetadata }>();

  const configFor = async (idp: IdpConfig, secret: string | null): Promise<client.Configuration> => {
    const metadata: Partial<client.ClientMetadata> = {
      // Seconds the platform clock is ahead of this process's: the library then checks exp/iat against it.
      [client.clockSkew]: Math.round((opts.now() - Date.now()) / 1000),
      ...(secret === null ? { token_endpoint_auth_method: 'none' } : { client_secret: secret }),
    };
    const auth = secret === null ? client.None() : client.ClientSecretBasic(secret);
    const key = `${idp.issuer}\u0000${idp.clientId}`;
    const hit = cache.get(key);
    let config: client.Configuration;
    if (hit && Date.now() - hit.at < 300_000) {
      config = new client.Configuration(hit.server, idp.clientId, metadata, auth);
    } else {
      try {
        config = await client.discovery(new URL(idp.issuer), idp.clientId, metadata, auth, {
          ...(opts.allowInsecure ? { execute: [client.allowInsecureRequests] } : {}),
          timeout: opts.timeoutSeconds ?? 10,
        });
      } catch (err) {
        throw new AppError('ERR_AUTH_OIDC_DISCOVERY', undefined, { detail: String(err), cause: err });
      }
      cache.set(key, { at: Date.now(), server: config.serverMetadata() });
    }
    if (opts.allowInsecure) client.allowInsecureRequests(config);
    // TLS to the token endpoint alone is not enough for us: verify the ID token's signature against the
    // provider's JWKS too (a compromised proxy or mis-routed connection must not mint identities).
    client.enableNonRepudiationChecks(config);
    return config;
  };

  return {
    async authorizationUrl(idp, secret, p) {
      const config = await configFor(idp, secret);
      return client
        .buildAuthorizationUrl(config, {
          redirect_uri: p.redirectUri,
          scope: idp.scopes.join(' '),
          code_challenge: p.codeChallenge,
          code_challenge_method: 'S256',
          state: p.state,
          nonce: p.nonce,
        })
        .toString();
    },
    async callback(idp, secret, p) {
      const config = await configFor(idp, secret);
      const tokens = await client.authorizationCodeGrant(config, new URL(p.currentUrl), {
        pkceCodeVerifier: p.codeVerifier,
        expectedState: p.state,
        expectedNonce: p.nonce,
        idTokenExpected: true,
      });
      const claims = tokens.claims();
      if (!claims) throw new Error('no ID token');
      return { ...claims } as Record<string, unknown>;
    },
  };
}
