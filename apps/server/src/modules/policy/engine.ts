import { cidrContains, parseCidr, parseIp, type Cidr } from './ip.ts';
import { DAYS } from './validate.ts';
import {
  ACTIONS,
  type AuthorizeContext,
  type CapOp,
  type Conditions,
  type Decision,
  type EffectiveDocument,
  type MatchedStatement,
  type PolicyDocument,
  type Principal,
} from './model.ts';

// A policy set compiled for one principal: variables substituted once, topic patterns merged into one
// trie per action (deny and allow), conditions that cannot change during a session decided up front.
// A decision is then a trie walk and no I/O. `decide` walks every statement instead, to say which ones
// matched (explain); both follow the same rules, and the property tests check they agree.

export interface CompileOptions {
  /** Context fixed for the session (MQTT: source address, certificate): `allows()` decides with it. */
  readonly context?: AuthorizeContext;
  /** Clock for time-window conditions. */
  readonly now?: () => number;
}

export interface CompiledPolicy {
  readonly principal: Principal;
  readonly documents: readonly EffectiveDocument[];
  decide(action: string, resource: string, context?: AuthorizeContext): Decision;
  /** Fast path for the broker: true when allowed, with the session's bound context. */
  allows(action: string, resource: string): boolean;
}

// ---- topics ------------------------------------------------------------------------------------------

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
  if (inner === '#') return outer === '#' || outer === '+/#';
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

/** True when some topic is matched by both filters. */
export function filterOverlaps(a: string, b: string): boolean {
  const x = a.split('/');
  const y = b.split('/');
  for (let i = 0; ; i++) {
    const p = x[i];
    const q = y[i];
    if (p === '#' || q === '#') return true;
    if (p === undefined || q === undefined) return p === q;
    if (p !== '+' && q !== '+' && p !== q) return false;
  }
}

const isFilter = (topic: string) => topic.includes('+') || topic.includes('#');

interface TrieNode {
  readonly lit: Map<string, TrieNode>;
  /** The literal children again, as parallel arrays, while there are few: compared in place. */
  keys: string[] | undefined;
  kids: TrieNode[];
  plus: TrieNode | undefined;
  /** A filter ends with `#` here. */
  hash: boolean;
  /** A filter ends exactly here. */
  end: boolean;
}

const node = (): TrieNode => ({
  lit: new Map(),
  keys: [],
  kids: [],
  plus: undefined,
  hash: false,
  end: false,
});

/** Up to this many literal children are compared in place rather than looked up by a sliced key. */
const FEW = 8;

/** Topic filters merged into one tree: a lookup costs the topic's depth, not the number of filters. */
export class TopicTrie {
  readonly #root = node();
  size = 0;

  add(filter: string): void {
    let n = this.#root;
    for (const seg of filter.split('/')) {
      if (seg === '#') {
        n.hash = true;
        this.size++;
        return;
      }
      if (seg === '+') n = n.plus ??= node();
      else {
        let c = n.lit.get(seg);
        if (!c) {
          n.lit.set(seg, (c = node()));
          if (n.keys && n.keys.length < FEW) {
            n.keys.push(seg);
            n.kids.push(c);
          } else n.keys = undefined;
        }
        n = c;
      }
    }
    n.end = true;
    this.size++;
  }

  /** Some filter matches the concrete topic. */
  matches(levels: readonly string[]): boolean {
    return match(this.#root, levels, 0);
  }

  /** Same as `matches`, for the topic that starts at `start` in `s`, without splitting it. */
  matchesAt(s: string, start: number): boolean {
    return matchAt(this.#root, s, start);
  }

  /** Some filter covers the requested filter (every topic it matches). */
  covers(levels: readonly string[]): boolean {
    return cover(this.#root, levels, 0);
  }

  /** Some filter shares at least one topic with the requested filter. */
  overlaps(levels: readonly string[]): boolean {
    return overlap(this.#root, levels, 0);
  }
}

function match(n: TrieNode, t: readonly string[], i: number): boolean {
  if (n.hash) return true;
  if (i === t.length) return n.end;
  const c = n.lit.get(t[i] as string);
  if (c && match(c, t, i + 1)) return true;
  return n.plus !== undefined && match(n.plus, t, i + 1);
}

function matchAt(n: TrieNode, s: string, pos: number): boolean {
  if (n.hash) return true;
  if (pos > s.length) return n.end;
  let end = s.indexOf('/', pos);
  if (end < 0) end = s.length;
  const keys = n.keys;
  if (keys !== undefined) {
    // Few children: compare the level in place, no substring.
    const len = end - pos;
    for (let i = 0; i < keys.length; i++) {
      const k = keys[i] as string;
      if (k.length === len && s.startsWith(k, pos)) {
        if (matchAt(n.kids[i] as TrieNode, s, end + 1)) return true;
        break;
      }
    }
  } else {
    const c = n.lit.get(s.slice(pos, end));
    if (c && matchAt(c, s, end + 1)) return true;
  }
  return n.plus !== undefined && matchAt(n.plus, s, end + 1);
}

function cover(n: TrieNode, r: readonly string[], i: number): boolean {
  if (n.hash) return true;
  if (i === r.length) return n.end;
  const seg = r[i] as string;
  // A lone `#` matches every topic, and so does `+/#` (every topic has a first level, maybe empty).
  if (seg === '#') return i === 0 && n.plus?.hash === true;
  if (seg !== '+') {
    const c = n.lit.get(seg);
    if (c && cover(c, r, i + 1)) return true;
  }
  return n.plus !== undefined && cover(n.plus, r, i + 1);
}

function overlap(n: TrieNode, r: readonly string[], i: number): boolean {
  if (n.hash) return true;
  if (i === r.length) return n.end;
  const seg = r[i] as string;
  if (seg === '#') return n.end || n.lit.size > 0 || n.plus !== undefined;
  if (seg === '+') {
    for (const c of n.lit.values()) if (overlap(c, r, i + 1)) return true;
  } else {
    const c = n.lit.get(seg);
    if (c && overlap(c, r, i + 1)) return true;
  }
  return n.plus !== undefined && overlap(n.plus, r, i + 1);
}

// ---- variables -----------------------------------------------------------------------------------------

const VAR = /\$\{([a-z]+(?:\.[A-Za-z0-9_.-]+)*)\}/g;

export function variablesOf(principal: Principal): Record<string, string> {
  const vars: Record<string, string> = Object.create(null) as Record<string, string>;
  vars['principal.id'] = principal.id;
  vars['principal.tenant'] = principal.tenant;
  vars['principal.type'] = principal.type;
  if (principal.type === 'device') {
    vars['device.id'] = principal.id;
    vars['device.tenant'] = principal.tenant;
    if (principal.fleet) vars['device.fleet'] = principal.fleet;
    for (const [k, v] of Object.entries(principal.attributes ?? {})) vars[`device.attr.${k}`] = v;
  }
  return vars;
}

// A value may not bring wildcards (`+ # *`) or NUL into a pattern, and only a fleet path may span
// topic levels. Such a value, or an undefined variable, makes the pattern match nothing.
// eslint-disable-next-line no-control-regex -- NUL is exactly what must be refused
const UNSAFE_VALUE = /[+#*\u0000]/;

/** Substitutes variables; undefined when a variable is undefined or its value is unsafe. */
export function substitute(pattern: string, vars: Record<string, string>): string | undefined {
  if (!pattern.includes('${')) return pattern;
  let bad = false;
  const out = pattern.replace(VAR, (_m, name: string) => {
    const v = vars[name];
    if (v === undefined || v === '' || UNSAFE_VALUE.test(v) || (name !== 'device.fleet' && v.includes('/'))) {
      bad = true;
      return '';
    }
    return v;
  });
  return bad || out.includes('${') ? undefined : out;
}

// ---- resources -----------------------------------------------------------------------------------------

export interface ParsedTopic {
  readonly tenant: string;
  readonly topic: string;
}

/** `bulwark:<tenant>:topic/<topic>` -> { tenant, topic }. */
export function parseTopicResource(resource: string): ParsedTopic | undefined {
  if (!resource.startsWith('bulwark:')) return undefined;
  const colon = resource.indexOf(':', 8);
  if (colon < 0 || !resource.startsWith('topic/', colon + 1)) return undefined;
  return { tenant: resource.slice(8, colon), topic: resource.slice(colon + 7) };
}

function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function glob(pattern: string): (s: string) => boolean {
  if (pattern === '*') return () => true;
  if (!pattern.includes('*')) return (s) => s === pattern;
  const re = new RegExp(`^${pattern.split('*').map(escapeRegex).join('.*')}$`, 's');
  return (s) => re.test(s);
}

type Pattern =
  | {
      readonly kind: 'topic';
      readonly tenant: (t: string) => boolean;
      readonly literalTenant?: string;
      readonly filter: string;
    }
  | { readonly kind: 'glob'; readonly test: (s: string) => boolean };

function compilePattern(p: string): Pattern {
  const t = parseTopicResource(p);
  if (t) {
    return t.tenant.includes('*')
      ? { kind: 'topic', tenant: glob(t.tenant), filter: t.topic }
      : { kind: 'topic', tenant: (x) => x === t.tenant, literalTenant: t.tenant, filter: t.topic };
  }
  return { kind: 'glob', test: glob(p) };
}

/**
 * Does the pattern apply to the resource? For a requested topic filter (subscribe), an allow must cover
 * it entirely, and a deny applies as soon as they share one topic ("in doubt, deny").
 */
function patternHit(
  p: Pattern,
  resource: string,
  parsed: ParsedTopic | undefined,
  mode: 'allow' | 'deny',
): boolean {
  if (p.kind === 'glob') return p.test(resource);
  if (!parsed || !p.tenant(parsed.tenant)) return false;
  if (!isFilter(parsed.topic)) return topicMatches(p.filter, parsed.topic);
  return mode === 'allow' ? filterCovers(p.filter, parsed.topic) : filterOverlaps(p.filter, parsed.topic);
}

// ---- conditions ----------------------------------------------------------------------------------------

interface CompiledConditions {
  readonly raw: Conditions;
  readonly sourceIp: readonly Cidr[] | undefined;
  readonly notSourceIp: readonly Cidr[] | undefined;
}

function compileConditions(c: Conditions): CompiledConditions {
  const cidrs = (l: readonly string[] | undefined) =>
    l?.map(parseCidr).filter((x): x is Cidr => x !== undefined);
  return { raw: c, sourceIp: cidrs(c.sourceIp), notSourceIp: cidrs(c.notSourceIp) };
}

const minutes = (hhmm: string) => Number(hhmm.slice(0, 2)) * 60 + Number(hhmm.slice(3, 5));

/**
 * Evaluates conditions. Information the context lacks (no source address, no certificate, not a device)
 * is resolved strictly: an allow statement then does not apply, a deny statement does.
 * `skipContextual`: decide only what the principal alone determines (compile time without a context).
 */
function conditionsHold(
  c: CompiledConditions,
  principal: Principal,
  ctx: AuthorizeContext,
  now: () => number,
  deny: boolean,
  skip: { context: boolean; time: boolean } = { context: false, time: false },
): boolean {
  const r = c.raw;
  if (r.deviceAttr) {
    if (principal.type !== 'device') {
      if (!deny) return false;
    } else {
      const attrs = principal.attributes ?? {};
      for (const [k, values] of Object.entries(r.deviceAttr)) {
        const v = Object.hasOwn(attrs, k) ? attrs[k] : undefined;
        if (v === undefined || !values.includes(v)) return false;
      }
    }
  }
  if (r.deviceCap) {
    if (principal.type !== 'device') {
      if (!deny) return false;
    } else {
      const caps = principal.capabilities ?? {};
      for (const [k, test] of Object.entries(r.deviceCap)) {
        const v = Object.hasOwn(caps, k) ? caps[k] : undefined;
        if (v === undefined || !capHolds(v, test)) return false;
      }
    }
  }
  if (!skip.context) {
    if (c.sourceIp || c.notSourceIp) {
      const ip = ctx.sourceIp === undefined ? undefined : parseIp(ctx.sourceIp);
      if (!ip) {
        if (!deny) return false;
      } else {
        if (c.sourceIp && !c.sourceIp.some((x) => cidrContains(x, ip))) return false;
        if (c.notSourceIp && c.notSourceIp.some((x) => cidrContains(x, ip))) return false;
      }
    }
    if (r.mfa !== undefined && (ctx.mfa === true) !== r.mfa) return false;
    if (r.certAttr) {
      if (!ctx.cert) {
        if (!deny) return false;
      } else {
        for (const [k, values] of Object.entries(r.certAttr)) {
          const v = Object.hasOwn(ctx.cert, k) ? ctx.cert[k] : undefined;
          if (v === undefined || !values.includes(v)) return false;
        }
      }
    }
  }
  if (!skip.time && r.timeWindow) {
    const d = new Date(ctx.now ?? now());
    const m = d.getUTCHours() * 60 + d.getUTCMinutes();
    const from = minutes(r.timeWindow.from);
    const to = minutes(r.timeWindow.to);
    // A window past midnight belongs to the day it started on.
    const inWindow = from < to ? m >= from && m < to : m >= from || m < to;
    if (!inWindow) return false;
    if (r.timeWindow.days) {
      const day = from < to || m >= from ? d.getUTCDay() : (d.getUTCDay() + 6) % 7;
      if (!r.timeWindow.days.includes(DAYS[day] as string)) return false;
    }
  }
  return true;
}

/** Version-aware comparison (numeric runs as numbers), as in dynamic group queries. */
function compareVersions(a: string, b: string): number {
  const pa = a.split(/[.\-+_]/);
  const pb = b.split(/[.\-+_]/);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const x = pa[i];
    const y = pb[i];
    if (x === undefined) return -1;
    if (y === undefined) return 1;
    const nx = /^\d+$/.test(x) ? Number(x) : NaN;
    const ny = /^\d+$/.test(y) ? Number(y) : NaN;
    if (!Number.isNaN(nx) && !Number.isNaN(ny)) {
      if (nx !== ny) return nx < ny ? -1 : 1;
    } else if (x !== y) return x < y ? -1 : 1;
  }
  return 0;
}

function capHolds(v: string, test: readonly string[] | Readonly<Partial<Record<CapOp, string>>>): boolean {
  const items = () => v.split(',').map((s) => s.trim());
  if (Array.isArray(test)) return test.includes(v) || test.some((t) => items().includes(t));
  for (const [op, want] of Object.entries(test) as [CapOp, string][]) {
    const ok =
      op === '='
        ? v === want
        : op === '!='
          ? v !== want
          : op === 'contains'
            ? items().includes(want)
            : op === '<'
              ? compareVersions(v, want) < 0
              : op === '<='
                ? compareVersions(v, want) <= 0
                : op === '>'
                  ? compareVersions(v, want) > 0
                  : compareVersions(v, want) >= 0;
    if (!ok) return false;
  }
  return true;
}

const hasContextual = (r: Conditions) =>
  r.sourceIp !== undefined || r.notSourceIp !== undefined || r.mfa !== undefined || r.certAttr !== undefined;

// ---- compilation ---------------------------------------------------------------------------------------

interface CompiledStatement {
  readonly ref: MatchedStatement;
  readonly deny: boolean;
  readonly action: (a: string) => boolean;
  readonly actions: readonly string[];
  /** `resources`, or with `except` the `notResources` of a "deny everything except" statement. */
  readonly patterns: readonly Pattern[];
  readonly except: boolean;
  readonly conditions: CompiledConditions | undefined;
}

function actionMatcher(actions: readonly string[]): (a: string) => boolean {
  const exact = new Set(actions.filter((a) => !a.includes('*')));
  const globs = actions.filter((a) => a.includes('*')).map(glob);
  return (a) => exact.has(a) || globs.some((g) => g(a));
}

function statementHits(s: CompiledStatement, resource: string, parsed: ParsedTopic | undefined): boolean {
  if (s.except) return !s.patterns.some((p) => patternHit(p, resource, parsed, 'allow'));
  return s.patterns.some((p) => patternHit(p, resource, parsed, s.deny ? 'deny' : 'allow'));
}

/** Topic filters of one tenant merged into a trie; `prefix` is `bulwark:<tenant>:topic/`. */
interface TrieEntry {
  readonly prefix: string;
  readonly trie: TopicTrie;
}

interface ActionPlan {
  readonly deny: TrieEntry[];
  readonly allow: TrieEntry[];
  readonly slowDeny: CompiledStatement[];
  readonly slowAllow: CompiledStatement[];
  /**
   * Recent decisions by resource (devices use a few topics over and over). Only when no statement of
   * the plan depends on the time of day; a compiled policy never changes, so entries never go stale.
   */
  readonly memo: Map<string, boolean> | undefined;
}

const MEMO_SIZE = 256;

const KNOWN_ACTIONS = new Set<string>(ACTIONS);

function trieFor(entries: TrieEntry[], tenant: string): TopicTrie {
  const prefix = `bulwark:${tenant}:topic/`;
  let e = entries.find((x) => x.prefix === prefix);
  if (!e) entries.push((e = { prefix, trie: new TopicTrie() }));
  return e.trie;
}

// What does not depend on the principal is compiled once per document (documents are immutable: a
// new version is a new object): a statement whose resources have no variables is compiled once and
// shared by every principal, and a resource with variables is split once into literal text and
// variable names. A per-device compile is then a few string concatenations.

/** A resource with variables: literal parts at even indexes, variable names at odd ones. */
type ResourceTemplate = readonly string[];

interface StatementTemplate {
  readonly statement: Omit<CompiledStatement, 'patterns'>;
  /** The whole statement, when no resource has a variable. */
  readonly fixed: CompiledStatement | undefined;
  /** Patterns without variables, then resources with them. */
  readonly constant: readonly Pattern[];
  readonly variable: readonly ResourceTemplate[];
}
const templates = new WeakMap<PolicyDocument, StatementTemplate[]>();

function resourceTemplate(raw: string): ResourceTemplate {
  const parts: string[] = [];
  let last = 0;
  for (const m of raw.matchAll(VAR)) {
    parts.push(raw.slice(last, m.index), m[1] as string);
    last = m.index + m[0].length;
  }
  parts.push(raw.slice(last));
  return parts;
}

/** `substitute` on a split resource: undefined when a variable is undefined or its value unsafe. */
function fill(t: ResourceTemplate, vars: Record<string, string>): string | undefined {
  let out = t[0] as string;
  for (let i = 1; i < t.length; i += 2) {
    const name = t[i] as string;
    const v = vars[name];
    if (v === undefined || v === '' || UNSAFE_VALUE.test(v) || (name !== 'device.fleet' && v.includes('/')))
      return undefined;
    out += v + (t[i + 1] as string);
  }
  // A leftover `${` (a malformed reference) makes the pattern unusable, as in `substitute`.
  return out.includes('${') ? undefined : out;
}

function templatesOf(document: PolicyDocument): StatementTemplate[] {
  let t = templates.get(document);
  if (!t) {
    t = document.statements.map((st, index) => {
      const except = st.notResources !== undefined;
      const statement = {
        ref: { policy: document.id, sid: st.sid, statement: index, effect: st.effect },
        deny: st.effect === 'deny',
        action: actionMatcher(st.actions),
        actions: st.actions,
        except,
        conditions: st.conditions ? compileConditions(st.conditions) : undefined,
      };
      const constant: Pattern[] = [];
      const variable: ResourceTemplate[] = [];
      for (const r of (except ? st.notResources : st.resources) ?? []) {
        if (!r.includes('${')) constant.push(compilePattern(r));
        else variable.push(resourceTemplate(r));
      }
      return {
        statement,
        fixed: variable.length === 0 ? { ...statement, patterns: constant } : undefined,
        constant,
        variable,
      };
    });
    templates.set(document, t);
  }
  return t;
}

// Glob patterns compile to a RegExp: worth sharing when the text repeats (`bulwark:${device.tenant}:ota/*`).
const globCache = new Map<string, Pattern>();
function globPatternOf(text: string): Pattern {
  let p = globCache.get(text);
  if (!p) {
    p = compilePattern(text);
    // Bounded: per-device texts (with ${device.id}) would otherwise grow it without end.
    if (globCache.size >= 10_000) globCache.clear();
    globCache.set(text, p);
  }
  return p;
}

function toEffective(d: PolicyDocument | EffectiveDocument): EffectiveDocument {
  return 'document' in d ? d : { document: d, version: 0, attachedAt: [] };
}

export function compile(
  principal: Principal,
  documents: readonly (PolicyDocument | EffectiveDocument)[],
  options: CompileOptions = {},
): CompiledPolicy {
  const docs = documents.map(toEffective);
  const vars = variablesOf(principal);
  const now = options.now ?? Date.now;
  const bound = options.context ?? {};
  const statements: CompiledStatement[] = [];
  for (const { document } of docs) {
    for (const t of templatesOf(document)) {
      if (t.fixed) {
        statements.push(t.fixed);
        continue;
      }
      const patterns = t.constant.slice();
      for (const r of t.variable) {
        // An unusable pattern in an allow matches nothing. In a "deny except" list it exempts nothing.
        const sub = fill(r, vars);
        if (sub !== undefined) patterns.push(sub.includes('*') ? globPatternOf(sub) : compilePattern(sub));
      }
      statements.push({ ...t.statement, patterns });
    }
  }

  // Per action, built on first use (a session uses a handful of the known actions): which statements
  // can apply, split into trie-able topic patterns and the rest.
  const plans = new Map<string, ActionPlan>();
  const withContext = options.context !== undefined;
  const buildPlan = (action: string): ActionPlan => {
    const slowDeny: CompiledStatement[] = [];
    const slowAllow: CompiledStatement[] = [];
    const plan = { deny: [] as TrieEntry[], allow: [] as TrieEntry[], slowDeny, slowAllow };
    for (const s of statements) {
      if (!s.action(action)) continue;
      let dynamic = false;
      if (s.conditions) {
        const r = s.conditions.raw;
        // Decided now: everything the principal (and, for a session, the bound context) determines.
        if (
          !conditionsHold(s.conditions, principal, bound, now, s.deny, { context: !withContext, time: true })
        )
          continue;
        dynamic = r.timeWindow !== undefined || (!withContext && hasContextual(r));
      }
      if (dynamic || s.except) {
        (s.deny ? slowDeny : slowAllow).push(s);
        continue;
      }
      const rest: Pattern[] = [];
      for (const p of s.patterns) {
        if (p.kind === 'topic' && p.literalTenant !== undefined)
          trieFor(s.deny ? plan.deny : plan.allow, p.literalTenant).add(p.filter);
        else rest.push(p);
      }
      if (rest.length > 0) (s.deny ? slowDeny : slowAllow).push({ ...s, patterns: rest });
    }
    const timed = [...slowDeny, ...slowAllow].some((s) => s.conditions?.raw.timeWindow !== undefined);
    return { ...plan, memo: timed ? undefined : new Map() };
  };

  const applies = (
    s: CompiledStatement,
    resource: string,
    parsed: ParsedTopic | undefined,
    ctx: AuthorizeContext,
  ) =>
    statementHits(s, resource, parsed) &&
    (!s.conditions || conditionsHold(s.conditions, principal, ctx, now, s.deny));

  const decide = (action: string, resource: string, context?: AuthorizeContext): Decision => {
    const ctx = context ? { ...bound, ...context } : bound;
    const parsed = parseTopicResource(resource);
    const denies: MatchedStatement[] = [];
    const allows: MatchedStatement[] = [];
    for (const s of statements) {
      if (!s.action(action) || !applies(s, resource, parsed, ctx)) continue;
      (s.deny ? denies : allows).push(s.ref);
    }
    // Deny wins; no matching allow means deny.
    return denies.length > 0
      ? { allowed: false, matched: denies }
      : { allowed: allows.length > 0, matched: allows };
  };

  const decideFast = (plan: ActionPlan, resource: string): boolean => {
    // Concrete topics (publish, delivery) are walked in place; filters (subscribe) are split.
    let levels: string[] | undefined;
    let filter: boolean | undefined;
    const deny = plan.deny;
    for (let i = 0; i < deny.length; i++) {
      const e = deny[i] as TrieEntry;
      if (!resource.startsWith(e.prefix)) continue;
      filter ??= resource.includes('+', e.prefix.length) || resource.includes('#', e.prefix.length);
      if (!filter) {
        if (e.trie.matchesAt(resource, e.prefix.length)) return false;
      } else if (e.trie.overlaps((levels ??= resource.slice(e.prefix.length).split('/')))) return false;
    }
    const slow = plan.slowDeny.length + plan.slowAllow.length > 0;
    const parsed = slow ? parseTopicResource(resource) : undefined;
    if (slow) for (const s of plan.slowDeny) if (applies(s, resource, parsed, bound)) return false;
    const allow = plan.allow;
    for (let i = 0; i < allow.length; i++) {
      const e = allow[i] as TrieEntry;
      if (!resource.startsWith(e.prefix)) continue;
      filter ??= resource.includes('+', e.prefix.length) || resource.includes('#', e.prefix.length);
      if (!filter) {
        if (e.trie.matchesAt(resource, e.prefix.length)) return true;
      } else if (e.trie.covers((levels ??= resource.slice(e.prefix.length).split('/')))) return true;
    }
    if (slow) for (const s of plan.slowAllow) if (applies(s, resource, parsed, bound)) return true;
    return false;
  };

  return {
    principal,
    documents: docs,
    decide,
    allows(action, resource) {
      let plan = plans.get(action);
      if (plan === undefined) {
        if (!KNOWN_ACTIONS.has(action)) return decide(action, resource).allowed;
        plans.set(action, (plan = buildPlan(action)));
      }
      const memo = plan.memo;
      if (memo !== undefined) {
        const hit = memo.get(resource);
        if (hit !== undefined) return hit;
        const result = decideFast(plan, resource);
        if (memo.size >= MEMO_SIZE) memo.clear();
        memo.set(resource, result);
        return result;
      }
      return decideFast(plan, resource);
    },
  };
}
