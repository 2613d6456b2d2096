// Permission boundaries for people and programs. A boundary never grants: an action is allowed only when
// the principal's documents allow it AND every boundary does. Token scopes (actions, fleet subtree),
// fleet-scoped role assignments and "MFA enrollment pending" are boundaries, so a token can never do
// more than its owner, and the intersection is decided here, in the policy engine, not in handlers.
import { compile, type CompiledPolicy } from './engine.ts';
import type { AuthorizeContext, Boundary, Decision, PolicyDocument, Principal } from './model.ts';

/** Fleet paths: segments of letters, digits, `.`, `_`, `-`, joined by `/`. No wildcards. */
export const FLEET_PATH = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}(?:\/[A-Za-z0-9][A-Za-z0-9._-]{0,63}){0,15}$/;

/** `fleet` is `root` or below it. */
export function fleetWithin(fleet: string, root: string): boolean {
  return fleet === root || fleet.startsWith(`${root}/`);
}

const SELF = [
  'bulwark:${principal.tenant}:account/${principal.id}',
  'bulwark:${principal.tenant}:account/${principal.id}/*',
];

/** The boundary as a policy document, compiled by the same engine as every other policy. */
export function boundaryDocument(b: Boundary): PolicyDocument {
  const actions = b.actions ?? ['*'];
  let resources: string[];
  if (b.selfOnly) resources = SELF;
  else if (b.fleet !== undefined) {
    // An unusable fleet path (wildcards) must not widen anything: it then allows only the own account.
    resources = FLEET_PATH.test(b.fleet)
      ? [
          `bulwark:\${principal.tenant}:fleet/${b.fleet}`,
          `bulwark:\${principal.tenant}:fleet/${b.fleet}/*`,
          ...SELF,
        ]
      : SELF;
  } else resources = ['bulwark:${principal.tenant}:*'];
  return {
    id: `boundary:${b.kind}`,
    description: `Permission boundary (${b.kind})`,
    statements: [{ sid: b.kind, effect: 'allow', actions, resources }],
  };
}

export interface BoundaryVerdict {
  readonly boundary: Boundary;
  readonly allowed: boolean;
}

export interface BoundaryChecker {
  /** `decision` is what the principal's documents said; narrowed to a denial when a boundary refuses. */
  check(
    principal: Principal,
    action: string,
    resource: string,
    context: AuthorizeContext | undefined,
    decision: Decision,
  ): Decision;
  /** Every boundary of the principal and whether it lets the request through (explain). */
  verdicts(
    principal: Principal,
    action: string,
    resource: string,
    context: AuthorizeContext | undefined,
  ): BoundaryVerdict[];
}

export function createBoundaryChecker(now: () => number): BoundaryChecker {
  const cache = new Map<string, CompiledPolicy>();
  const compiled = (principal: Principal, b: Boundary) => {
    const key = `${principal.tenant}\u0000${principal.id}\u0000${JSON.stringify(b)}`;
    let c = cache.get(key);
    if (!c) {
      c = compile(principal, [boundaryDocument(b)], { now });
      if (cache.size > 10_000) cache.clear();
      cache.set(key, c);
    }
    return c;
  };
  const passes = (
    principal: Principal,
    b: Boundary,
    action: string,
    resource: string,
    context: AuthorizeContext | undefined,
  ) => {
    // An object placed in a fleet (a device in plant-a/line-3) is inside a fleet boundary when its
    // fleet is; the caller says where the object is through context.resourceFleet.
    const inFleet =
      b.fleet !== undefined &&
      context?.resourceFleet !== undefined &&
      resource.startsWith(`bulwark:${principal.tenant}:`) &&
      FLEET_PATH.test(context.resourceFleet) &&
      fleetWithin(context.resourceFleet, b.fleet);
    const target = inFleet ? `bulwark:${principal.tenant}:fleet/${context?.resourceFleet ?? ''}` : resource;
    return compiled(principal, b).decide(action, target, context).allowed;
  };
  return {
    check(principal, action, resource, context, decision) {
      if (!decision.allowed || principal.type === 'device') return decision;
      for (const b of principal.boundaries ?? []) {
        if (!passes(principal, b, action, resource, context))
          return {
            allowed: false,
            matched: [{ policy: `boundary:${b.kind}`, sid: b.kind, statement: 0, effect: 'deny' }],
          };
      }
      return decision;
    },
    verdicts(principal, action, resource, context) {
      if (principal.type === 'device') return [];
      return (principal.boundaries ?? []).map((boundary) => ({
        boundary,
        allowed: passes(principal, boundary, action, resource, context),
      }));
    },
  };
}
