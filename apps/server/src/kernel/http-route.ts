/**
 * Transport-neutral description of an HTTP route. Modules declare routes in their http.ts; the HTTP
 * transport registers them, authenticates the caller and asks the policy engine about `action` on
 * `resource(ctx)` before the handler runs. A route cannot forget authorization: `action` is required,
 * and only routes declared as `PublicHttpRoute` (sign-in, SSO callbacks, password reset) skip it.
 */
export interface RoutePrincipal {
  readonly type: 'user' | 'service';
  readonly id: string;
  readonly tenant: string;
  readonly role: string;
  readonly name?: string;
  readonly tokenId?: string;
  /** Set when the request was authenticated by a console session cookie. */
  readonly sessionId?: string;
  /** The session's CSRF token (derived from the cookie value), for `GET /auth/session`. */
  readonly csrfToken?: string;
  /** A second factor was verified for this session (always false for tokens). */
  readonly mfa?: boolean;
  readonly authMethod?: 'token' | 'session' | 'oidc';
  /** Permission boundaries (token scope, fleet-scoped role...), decided by the policy engine. */
  readonly boundaries?: readonly {
    readonly kind: string;
    readonly actions?: readonly string[];
    readonly fleet?: string;
    readonly selfOnly?: boolean;
  }[];
}

export interface RouteContext {
  readonly principal: RoutePrincipal;
  readonly params: Record<string, string>;
  readonly query: Record<string, unknown>;
  readonly body: unknown;
  readonly sourceIp: string;
  readonly requestId: string;
  readonly userAgent?: string;
}

/** Context of a public route: no principal, but the request's cookies (SSO state binding). */
export interface PublicRouteContext extends Omit<RouteContext, 'principal'> {
  readonly cookies: Readonly<Record<string, string>>;
  /** Scheme, host and port the request was addressed to, e.g. `https://bulwark.example:8443`. */
  readonly origin: string;
  readonly url: string;
}

/** A token bucket: `burst` requests at once, refilled at `perMinute`. */
export interface RateLimitSpec {
  readonly burst: number;
  readonly perMinute: number;
  /** Extra key part, e.g. the account name being signed in to (limits per route, source and account). */
  account?(ctx: { body: unknown; params: Record<string, string> }): string | undefined;
}

/** Side effects on the HTTP response a handler may ask for (cookies are the transport's business). */
export interface HttpEffects {
  /** Set the console session cookie (`maxAgeSeconds`) or clear it. */
  readonly session?: { readonly value: string; readonly maxAgeSeconds: number } | 'clear';
  /** A short-lived cookie binding an SSO sign-in to this browser. */
  readonly ssoBinding?: { readonly value: string; readonly maxAgeSeconds: number } | 'clear';
  /** 302 to this URL instead of a JSON body. */
  readonly redirect?: string;
  /** Send this HTML page (e.g. after SSO, so the next navigation is same-site and carries the cookie). */
  readonly html?: string;
}

export class HttpResult {
  readonly body: unknown;
  readonly effects: HttpEffects;
  constructor(body: unknown, effects: HttpEffects) {
    this.body = body;
    this.effects = effects;
  }
}

export interface HttpRoute {
  readonly method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  /** Fastify-style path under /api/v1, e.g. `/devices/:id`. */
  readonly url: string;
  readonly summary: string;
  readonly tags: readonly string[];
  /** Policy action checked before the handler, e.g. `devices:write`. */
  readonly action: string;
  /** Resource name for the policy check (see policy model). */
  resource(ctx: RouteContext): string;
  /**
   * Fleet path of the object the route acts on (a device's fleet), when it has one. Asked only for
   * principals limited to a fleet subtree, so the policy engine can tell whether the object is inside.
   */
  resourceFleet?(ctx: RouteContext): Promise<string | undefined>;
  readonly schema?: {
    readonly params?: object;
    readonly querystring?: object;
    readonly body?: object;
    readonly response?: Record<number, object>;
  };
  /** Success status; 204 sends no body. */
  readonly status?: number;
  /** Rate limit per (route, source address, account). */
  readonly rateLimit?: RateLimitSpec;
  handler(ctx: RouteContext): Promise<unknown>;
}

export interface PublicHttpRoute {
  readonly public: true;
  readonly method: 'GET' | 'POST';
  /** Under /api/v1 unless `browser` is set: then as-is (e.g. `/auth/oidc/:tenant/callback`) and not in OpenAPI. */
  readonly url: string;
  readonly browser?: boolean;
  readonly summary: string;
  readonly tags: readonly string[];
  readonly schema?: HttpRoute['schema'];
  readonly status?: number;
  /** Public routes are always rate limited. */
  readonly rateLimit: RateLimitSpec;
  handler(ctx: PublicRouteContext): Promise<unknown>;
}
