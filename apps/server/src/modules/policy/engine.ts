import type { AuthorizeContext, Decision, PolicyDocument, Principal, Statement } from './model.ts';

// A policy set compiled for one principal: variables substituted once, patterns turned into matchers,
// so each decision is a few string comparisons and no I/O.

type Matcher = (resource: string) => boolean;

interface CompiledStatement {
  readonly policy: string;
  readonly sid: string | undefined;
  readonly deny: boolean;
  readonly actions: (action: string) => boolean;
  readonly resources: readonly Matcher[];
}

export interface CompiledPolicy {
  readonly principal: Principal;
  decide(action: string, resource: string, context?: AuthorizeContext): Decision;
  /** Fast path for the broker: true when allowed. */
  allows(action: string, resource: string): boolean;
}

const VAR = /\$\{([a-z]+(?:\.[A-Za-z0-9_-]+)*)\}/g;

export function variablesOf(principal: Principal): Record<string, string> {
  const vars: Record<string, string> = {
    'principal.id': principal.id,
    'principal.tenant': principal.tenant,
    'principal.type': principal.type,
  };
  if (principal.type === 'device') {
    vars['device.id'] = principal.id;
    vars['device.tenant'] = principal.tenant;
    for (const [k, v] of Object.entries(principal.attributes ?? {})) vars[`device.attr.${k}`] = v;
  }
  return vars;
}

/**
 * Substitutes variables. A variable that is not defined for this principal makes the pattern match
 * nothing (returns undefined), so a statement can never widen by accident.
 */
export function substitute(pattern: string, vars: Record<string, string>): string | undefined {
  let missing = false;
  const out = pattern.replace(VAR, (_m, name: string) => {
    const v = vars[name];
    if (v === undefined) {
      missing = true;
      return '';
    }
    return v;
  });
  return missing ? undefined : out;
}

function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Matches an MQTT topic against a filter with + and # ([MQTT-4.7.1-2], [MQTT-4.7.1-3]). */
export function topicMatches(filter: string, topic: string): boolean {
  const f = filter.split('/');
  const t = topic.split('/');
  for (let i = 0; i < f.length; i++) {
    const seg = f[i];
    if (seg === '#') return true;
    if (i >= t.length) return false;
    if (seg !== '+' && seg !== t[i]) return false;
  }
  return f.length === t.length;
}

/** True when every topic matched by filter `inner` is matched by filter `outer`. */
export function filterCovers(outer: string, inner: string): boolean {
  const o = outer.split('/');
  const n = inner.split('/');
  for (let i = 0; i < o.length; i++) {
    const seg = o[i];
    if (seg === '#') return true;
    const other = n[i];
    if (other === undefined) return false;
    if (other === '#') return false;
    if (seg === '+') continue;
    if (other === '+' || seg !== other) return false;
  }
  return o.length === n.length;
}

function compileResource(pattern: string): Matcher {
  const topicAt = pattern.indexOf(':topic/');
  if (topicAt >= 0 && pattern.startsWith('bulwark:')) {
    const prefix = pattern.slice(0, topicAt + 7);
    const filter = pattern.slice(topicAt + 7);
    const prefixMatch = compileGlob(prefix);
    // The requested resource may itself be a subscription filter: then the statement must cover it.
    return (resource) => {
      const at = resource.indexOf(':topic/');
      if (at < 0 || !prefixMatch(resource.slice(0, at + 7))) return false;
      const requested = resource.slice(at + 7);
      return requested.includes('+') || requested.includes('#')
        ? filterCovers(filter, requested)
        : topicMatches(filter, requested);
    };
  }
  return compileGlob(pattern);
}

function compileGlob(pattern: string): Matcher {
  if (pattern === '*') return () => true;
  if (!pattern.includes('*')) return (r) => r === pattern;
  const re = new RegExp(`^${pattern.split('*').map(escapeRegex).join('.*')}$`);
  return (r) => re.test(r);
}

function compileActions(actions: readonly string[]): (a: string) => boolean {
  const exact = new Set(actions.filter((a) => !a.includes('*')));
  const globs = actions.filter((a) => a.includes('*')).map(compileGlob);
  return (a) => exact.has(a) || globs.some((g) => g(a));
}

export function compile(principal: Principal, documents: readonly PolicyDocument[]): CompiledPolicy {
  const vars = variablesOf(principal);
  const statements: CompiledStatement[] = [];
  for (const doc of documents) {
    for (const st of doc.statements as Statement[]) {
      const resources = st.resources
        .map((r) => substitute(r, vars))
        .filter((r): r is string => r !== undefined)
        .map(compileResource);
      statements.push({
        policy: doc.id,
        sid: st.sid,
        deny: st.effect === 'deny',
        actions: compileActions(st.actions),
        resources,
      });
    }
  }
  const denies = statements.filter((s) => s.deny);
  const allows = statements.filter((s) => !s.deny);
  const hit = (s: CompiledStatement, action: string, resource: string) =>
    s.actions(action) && s.resources.some((m) => m(resource));
  return {
    principal,
    allows(action, resource) {
      for (const s of denies) if (hit(s, action, resource)) return false;
      for (const s of allows) if (hit(s, action, resource)) return true;
      return false;
    },
    decide(action, resource) {
      // Deny wins; no matching allow means deny.
      const deny = denies.find((s) => hit(s, action, resource));
      if (deny) return { allowed: false, matched: [{ policy: deny.policy, sid: deny.sid, effect: 'deny' }] };
      const matched = allows
        .filter((s) => hit(s, action, resource))
        .map((s) => ({ policy: s.policy, sid: s.sid, effect: 'allow' as const }));
      return { allowed: matched.length > 0, matched };
    },
  };
}
