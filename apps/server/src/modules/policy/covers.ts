// "Nobody can grant more than they hold." coversPermissions(grantor, requested) is true when every
// permission the requested principal would have (its documents, narrowed by its boundaries) is one the
// grantor holds itself (its documents, narrowed by its boundaries). Every route that creates or changes
// roles, tokens, service accounts, IdP role mappings or webhook subscriptions asks this before writing.
//
// The check is sound and deliberately conservative: it may refuse a grant that is in fact covered (a
// grantor whose allow is conditional, or who has a deny that might overlap), never the other way round.
import { ACTIONS, type Boundary, type PolicyDocument, type Principal, type Statement } from './model.ts';
import { filterCovers, parseTopicResource, substitute, variablesOf } from './engine.ts';
import { fleetWithin } from './boundary.ts';

export interface Holder {
  readonly principal: Principal;
  readonly documents: readonly PolicyDocument[];
}

export interface CoverageGap {
  readonly action: string;
  readonly resource: string;
}

export interface Coverage {
  readonly covered: boolean;
  /** The first permissions the grantor lacks (at most 20). */
  readonly missing: readonly CoverageGap[];
}

/** Documents that give a principal rights on its own account only; they are nobody's to grant. */
export const SELF_DOCUMENTS = new Set(['builtin:self-service']);

const escapeRegex = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

function globRegex(pattern: string): RegExp {
  return new RegExp(`^${pattern.split('*').map(escapeRegex).join('.*')}$`, 's');
}

/**
 * Every name matched by glob `inner` is matched by glob `outer`. Each `*` of `inner` becomes a character
 * no literal of `outer` can match, so only a `*` of `outer` can absorb it, and any string in its place
 * is absorbed the same way.
 */
export function globCovers(outer: string, inner: string): boolean {
  if (!outer.includes('*')) return outer === inner;
  return globRegex(outer).test(inner.replace(/\*/g, '\u0000'));
}

/** Could the two globs match a common name? Conservative: true unless their literal prefixes differ. */
function globMayOverlap(a: string, b: string): boolean {
  const pa = a.split('*')[0] ?? '';
  const pb = b.split('*')[0] ?? '';
  if (!a.includes('*') && !b.includes('*')) return a === b;
  return pa.startsWith(pb) || pb.startsWith(pa);
}

function actionMatches(patterns: readonly string[], action: string): boolean {
  return patterns.some((p) => globCovers(p, action));
}

function resourceCovers(outer: string, inner: string): boolean {
  if (globCovers(outer, inner)) return true;
  const o = parseTopicResource(outer);
  const i = parseTopicResource(inner);
  return !!o && !!i && o.tenant === i.tenant && !o.tenant.includes('*') && filterCovers(o.topic, i.topic);
}

/** The deepest fleet all boundaries agree on; null: they exclude each other (nothing is allowed). */
function boundaryFleet(boundaries: readonly Boundary[]): string | undefined | null {
  let fleet: string | undefined;
  for (const b of boundaries) {
    if (b.fleet === undefined) continue;
    if (fleet === undefined || fleetWithin(b.fleet, fleet)) fleet = b.fleet;
    else if (!fleetWithin(fleet, b.fleet)) return null;
  }
  return fleet;
}

function statementsOf(h: Holder, exclude: ReadonlySet<string>) {
  const vars = variablesOf(h.principal);
  const out: { st: Statement; resources: string[]; notResources: string[] }[] = [];
  for (const d of h.documents) {
    if (exclude.has(d.id)) continue;
    for (const st of d.statements) {
      const sub = (l: readonly string[] | undefined) =>
        (l ?? []).map((r) => substitute(r, vars)).filter((r): r is string => r !== undefined);
      out.push({ st, resources: sub(st.resources), notResources: sub(st.notResources) });
    }
  }
  return out;
}

export function coversPermissions(grantor: Holder, requested: Holder): Coverage {
  const missing: CoverageGap[] = [];
  const reqBounds = requested.principal.type === 'device' ? [] : (requested.principal.boundaries ?? []);
  const grantBounds = grantor.principal.type === 'device' ? [] : (grantor.principal.boundaries ?? []);
  // Limited to its own account, or to fleets that exclude each other: the requested principal can do
  // nothing anybody could grant.
  if (reqBounds.some((b) => b.selfOnly)) return { covered: true, missing };
  const reqFleet = boundaryFleet(reqBounds);
  if (reqFleet === null) return { covered: true, missing };

  const grantorStatements = statementsOf(grantor, new Set());
  const tenant = grantor.principal.tenant;

  const grantorHolds = (action: string, resource: string): boolean => {
    for (const b of grantBounds) {
      if (b.actions && !actionMatches(b.actions, action)) return false;
      if (b.selfOnly) return false;
      if (b.fleet !== undefined) {
        const under =
          resource === `bulwark:${tenant}:fleet/${b.fleet}` ||
          globCovers(`bulwark:${tenant}:fleet/${b.fleet}/*`, resource);
        if (!under && !(reqFleet !== undefined && fleetWithin(reqFleet, b.fleet))) return false;
      }
    }
    let allowed = false;
    for (const { st, resources, notResources } of grantorStatements) {
      if (!actionMatches(st.actions, action)) continue;
      if (st.effect === 'deny') {
        const overlaps =
          notResources.length > 0
            ? !notResources.some((n) => resourceCovers(n, resource))
            : resources.some((d) => globMayOverlap(d, resource));
        if (overlaps) return false;
        continue;
      }
      // A conditional allow (MFA, network, time window) is not held unconditionally.
      if (st.conditions && Object.keys(st.conditions).length > 0) continue;
      if (resources.some((g) => resourceCovers(g, resource))) allowed = true;
    }
    return allowed;
  };

  for (const { st, resources } of statementsOf(requested, SELF_DOCUMENTS)) {
    if (st.effect !== 'allow') continue; // denies only take away
    for (const action of ACTIONS) {
      if (!actionMatches(st.actions, action)) continue;
      if (reqBounds.some((b) => b.actions && !actionMatches(b.actions, action))) continue;
      for (const resource of resources) {
        if (grantorHolds(action, resource)) continue;
        if (missing.length < 20) missing.push({ action, resource });
      }
    }
  }
  return { covered: missing.length === 0, missing };
}
