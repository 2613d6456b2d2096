import type { RouteContext } from '../../kernel/index.ts';
import type { AuditService } from './service.ts';

/**
 * Records a successful administrative action taken through an API route: the caller is the actor, the
 * request's source address the source. Route handlers share this instead of building the entry each time.
 */
export function recordRouteAction(
  audit: AuditService,
  ctx: RouteContext,
  action: string,
  target: { type: string; id: string },
  details?: Record<string, unknown>,
): Promise<void> {
  return audit.record({
    tenant: ctx.principal.tenant,
    actor: { type: ctx.principal.type, id: ctx.principal.id },
    action,
    target,
    outcome: 'success',
    source: ctx.sourceIp,
    ...(details ? { details } : {}),
  });
}
