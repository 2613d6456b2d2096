// The query language of dynamic groups: a small boolean expression over device fields, parsed once
// into a tree and evaluated in memory for each device (no SQL is generated from user input).
//
//   expr    := and ('or' and)*
//   and     := not ('and' not)*
//   not     := 'not' not | '(' expr ')' | 'has' field | field op value | field 'in' '(' value (',' value)* ')'
//   field   := 'attr.'<name> | 'cap.'<capability field> | 'id' | 'fleet' | 'status'
//   op      := '=' | '!=' | '<' | '<=' | '>' | '>=' | 'under' | 'contains' | 'startswith'
//   value   := "text" | 'text' | word            (word: letters, digits, . _ - : /)
//
// `<` and friends compare versions: `2.10.0 > 2.9.1`. `under` is fleet-subtree membership, `contains`
// looks for an item in a comma-separated list (capability tags: "gps,camera").
// `cap.*` fields come from the device's latest capability report (CAPABILITY_FIELDS of @bulwark/protocol).
import { CAPABILITY_FIELDS, isCapabilityField } from '@bulwark/protocol';
import { AppError } from '../../kernel/index.ts';

export type Field =
  { kind: 'attr'; name: string } | { kind: 'cap'; name: string } | { kind: 'id' | 'fleet' | 'status' };
export type Op = '=' | '!=' | '<' | '<=' | '>' | '>=' | 'under' | 'contains' | 'startswith';

export type Query =
  | { t: 'or' | 'and'; a: Query; b: Query }
  | { t: 'not'; a: Query }
  | { t: 'has'; field: Field }
  | { t: 'cmp'; field: Field; op: Op; value: string }
  | { t: 'in'; field: Field; values: string[] };

export interface QueryTarget {
  readonly id: string;
  readonly status: string;
  readonly fleet: string;
  readonly attributes: Readonly<Record<string, string>>;
  /** Flattened latest capability report (`cap.firmware.version` → value); absent: none reported. */
  readonly capabilities?: Readonly<Record<string, string>>;
}

const MAX_LENGTH = 2048;
const MAX_DEPTH = 32;
const OPS: readonly string[] = ['=', '!=', '<', '<=', '>', '>=', 'under', 'contains', 'startswith'];
const KEYWORDS = new Set(['and', 'or', 'not', 'has', 'in', 'under', 'contains', 'startswith']);

interface Token {
  kind: 'word' | 'string' | 'op' | 'punct';
  text: string;
  at: number;
}

function fail(message: string, at?: number): never {
  throw new AppError(
    'ERR_GROUP_QUERY_INVALID',
    at === undefined ? message : `${message} at position ${at + 1}`,
  );
}

function tokenize(src: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  while (i < src.length) {
    const c = src[i] as string;
    if (c === ' ' || c === '\t' || c === '\n' || c === '\r') {
      i++;
    } else if (c === '(' || c === ')' || c === ',') {
      out.push({ kind: 'punct', text: c, at: i++ });
    } else if (c === '"' || c === "'") {
      let j = i + 1;
      let text = '';
      while (j < src.length && src[j] !== c) {
        if (src[j] === '\\' && j + 1 < src.length) j++;
        text += src[j];
        j++;
      }
      if (j >= src.length) fail('unterminated string', i);
      out.push({ kind: 'string', text, at: i });
      i = j + 1;
    } else if ('=!<>'.includes(c)) {
      const two = src.slice(i, i + 2);
      const op = two === '!=' || two === '<=' || two === '>=' ? two : c;
      if (op === '!') fail("unexpected '!' (did you mean '!='?)", i);
      out.push({ kind: 'op', text: op, at: i });
      i += op.length;
    } else if (/[A-Za-z0-9._:/-]/.test(c)) {
      let j = i;
      while (j < src.length && /[A-Za-z0-9._:/-]/.test(src[j] as string)) j++;
      out.push({ kind: 'word', text: src.slice(i, j), at: i });
      i = j;
    } else {
      fail(`unexpected character '${c}'`, i);
    }
  }
  return out;
}

export function parseQuery(src: string): Query {
  if (typeof src !== 'string' || src.trim() === '') fail('the query is empty');
  if (src.length > MAX_LENGTH) fail(`the query is longer than ${MAX_LENGTH} characters`);
  const tokens = tokenize(src);
  let pos = 0;
  const peek = () => tokens[pos];
  const end = () => src.length;
  const next = () => {
    const t = tokens[pos++];
    if (!t) fail('unexpected end of query', end());
    return t;
  };
  const isWord = (t: Token | undefined, w: string) => t?.kind === 'word' && t.text.toLowerCase() === w;

  const field = (): Field => {
    const t = next();
    if (t.kind !== 'word' || KEYWORDS.has(t.text.toLowerCase()))
      fail(`expected a field, got '${t.text}'`, t.at);
    if (t.text === 'id' || t.text === 'fleet' || t.text === 'status') return { kind: t.text };
    if (t.text.startsWith('attr.') && /^[A-Za-z][A-Za-z0-9_.-]{0,63}$/.test(t.text.slice(5)))
      return { kind: 'attr', name: t.text.slice(5) };
    if (t.text.startsWith('cap.')) {
      if (isCapabilityField(t.text)) return { kind: 'cap', name: t.text };
      return fail(
        `unknown capability field '${t.text}' (capability fields: ${CAPABILITY_FIELDS.join(', ')})`,
        t.at,
      );
    }
    return fail(`unknown field '${t.text}' (fields: attr.<name>, cap.<field>, id, fleet, status)`, t.at);
  };
  const value = (): string => {
    const t = next();
    if (t.kind === 'string' || (t.kind === 'word' && !KEYWORDS.has(t.text.toLowerCase()))) return t.text;
    return fail(`expected a value, got '${t.text}'`, t.at);
  };

  const primary = (depth: number): Query => {
    if (depth > MAX_DEPTH) fail(`the query nests deeper than ${MAX_DEPTH} levels`);
    const t = peek();
    if (!t) fail('unexpected end of query', end());
    if (isWord(t, 'not')) {
      pos++;
      return { t: 'not', a: primary(depth + 1) };
    }
    if (t.kind === 'punct' && t.text === '(') {
      pos++;
      const q = or(depth + 1);
      const close = next();
      if (close.text !== ')') fail(`expected ')', got '${close.text}'`, close.at);
      return q;
    }
    if (isWord(t, 'has')) {
      pos++;
      return { t: 'has', field: field() };
    }
    const f = field();
    const o = next();
    if (isWord(o, 'in')) {
      const open = next();
      if (open.text !== '(') fail("expected '(' after 'in'", open.at);
      const values = [value()];
      for (;;) {
        const sep = next();
        if (sep.text === ')') break;
        if (sep.text !== ',') fail(`expected ',' or ')', got '${sep.text}'`, sep.at);
        values.push(value());
      }
      return { t: 'in', field: f, values };
    }
    const op = o.kind === 'op' ? o.text : o.kind === 'word' ? o.text.toLowerCase() : '';
    if (!OPS.includes(op)) fail(`expected an operator (${OPS.join(' ')} in), got '${o.text}'`, o.at);
    if (op === 'under' && f.kind !== 'fleet') fail("'under' applies to fleet only", o.at);
    return { t: 'cmp', field: f, op: op as Op, value: value() };
  };
  const and = (depth: number): Query => {
    let q = primary(depth);
    while (isWord(peek(), 'and')) {
      pos++;
      q = { t: 'and', a: q, b: primary(depth) };
    }
    return q;
  };
  const or = (depth: number): Query => {
    let q = and(depth);
    while (isWord(peek(), 'or')) {
      pos++;
      q = { t: 'or', a: q, b: and(depth) };
    }
    return q;
  };

  const q = or(0);
  const rest = peek();
  if (rest) fail(`unexpected '${rest.text}'`, rest.at);
  return q;
}

/** Version-aware comparison: numeric runs compare as numbers, the rest as text. */
export function compareVersions(a: string, b: string): number {
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

function fieldValue(f: Field, d: QueryTarget): string | undefined {
  if (f.kind === 'attr') return Object.hasOwn(d.attributes, f.name) ? d.attributes[f.name] : undefined;
  if (f.kind === 'cap') {
    const caps = d.capabilities;
    return caps && Object.hasOwn(caps, f.name) ? caps[f.name] : undefined;
  }
  return f.kind === 'id' ? d.id : f.kind === 'fleet' ? d.fleet : d.status;
}

export function matchesQuery(q: Query, d: QueryTarget): boolean {
  switch (q.t) {
    case 'or':
      return matchesQuery(q.a, d) || matchesQuery(q.b, d);
    case 'and':
      return matchesQuery(q.a, d) && matchesQuery(q.b, d);
    case 'not':
      return !matchesQuery(q.a, d);
    case 'has':
      return fieldValue(q.field, d) !== undefined;
    case 'in': {
      const v = fieldValue(q.field, d);
      return v !== undefined && q.values.includes(v);
    }
    case 'cmp': {
      const v = fieldValue(q.field, d);
      if (v === undefined) return false;
      switch (q.op) {
        case '=':
          return v === q.value;
        case '!=':
          return v !== q.value;
        case '<':
          return compareVersions(v, q.value) < 0;
        case '<=':
          return compareVersions(v, q.value) <= 0;
        case '>':
          return compareVersions(v, q.value) > 0;
        case '>=':
          return compareVersions(v, q.value) >= 0;
        case 'under':
          return v === q.value || v.startsWith(`${q.value}/`);
        case 'contains':
          return v.split(',').some((item) => item.trim() === q.value);
        case 'startswith':
          return v.startsWith(q.value);
      }
    }
  }
}

/** Whether the query reads capability fields (devices must then be evaluated with their report). */
export function usesCapabilities(q: Query): boolean {
  switch (q.t) {
    case 'or':
    case 'and':
      return usesCapabilities(q.a) || usesCapabilities(q.b);
    case 'not':
      return usesCapabilities(q.a);
    default:
      return q.field.kind === 'cap';
  }
}
