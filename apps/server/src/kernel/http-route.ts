/**
 * Transport-neutral description of an HTTP route. Modules declare routes in their http.ts; the HTTP
 * transport registers them, authenticates the caller and asks the policy engine about `action` on
 * `resource(ctx)` before the handler runs. A route cannot forget authorization: `action` is required,
 * and only routes marked `public` skip it.
 */
export interface RoutePrincipal {
  readonly type: 'user' | 'service';
  readonly id: string;
  readonly tenant: string;
  readonly role: string;
  readonly name?: string;
  readonly tokenId?: string;
}

export interface RouteContext {
  readonly principal: RoutePrincipal;
  readonly params: Record<string, string>;
  readonly query: Record<string, unknown>;
  readonly body: unknown;
  readonly sourceIp: string;
  readonly requestId: string;
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
  readonly schema?: {
    readonly params?: object;
    readonly querystring?: object;
    readonly body?: object;
    readonly response?: Record<number, object>;
  };
  /** Success status; 204 sends no body. */
  readonly status?: number;
  handler(ctx: RouteContext): Promise<unknown>;
}
