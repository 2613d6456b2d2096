// Validation of policy documents on write: every problem is listed at once, each with the path of the
// offending field and the specific error code (unknown action, bad variable, malformed topic filter...).
import { CAPABILITY_FIELDS, isCapabilityField, type ErrorCode } from '@bulwark/protocol';
import { AppError } from '../../kernel/index.ts';
import { parseCidr } from './ip.ts';
import { ACTIONS, CAP_OPS, type Conditions, type PolicyDocument, type Statement } from './model.ts';

export const POLICY_ID = /^[a-z0-9][a-z0-9._-]{0,63}$/;
const SID = /^[A-Za-z0-9_-]{1,64}$/;
const ATTR_NAME = /^[A-Za-z][A-Za-z0-9_.-]{0,63}$/;
const KIND = /^[a-z][a-z-]{0,31}$/;
const HHMM = /^([01][0-9]|2[0-3]):[0-5][0-9]$/;
export const DAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'] as const;
const CERT_ATTRS = ['serial', 'fingerprint256'];
const CONDITIONS = ['sourceIp', 'notSourceIp', 'timeWindow', 'mfa', 'deviceAttr', 'certAttr', 'deviceCap'];
const MAX_STATEMENTS = 100;
const MAX_LIST = 100;

/** Variables a document may use; `device.attr.<name>` is checked by pattern. */
export const VARIABLES = [
  'principal.id',
  'principal.tenant',
  'principal.type',
  'device.id',
  'device.tenant',
  'device.fleet',
] as const;

const SERVICES = new Set(ACTIONS.map((a) => a.slice(0, a.indexOf(':'))));
const KNOWN_ACTIONS = new Set<string>(ACTIONS);

interface Problem {
  path: string;
  message: string;
  code: ErrorCode;
}

/** True for `*`, a known action, or `<service>:*` for a known service. */
export function isValidActionPattern(a: string): boolean {
  if (a === '*' || KNOWN_ACTIONS.has(a)) return true;
  return a.endsWith(':*') && SERVICES.has(a.slice(0, -2));
}

function closest(input: string, candidates: readonly string[]): string | undefined {
  const prefixed = candidates.filter((c) => input.length >= 3 && c.startsWith(input));
  if (prefixed.length === 1) return prefixed[0];
  let best: string | undefined;
  let bestD = Infinity;
  for (const c of candidates) {
    const d = editDistance(input, c);
    if (d < bestD) [best, bestD] = [c, d];
  }
  return bestD <= Math.max(2, Math.floor(input.length / 4)) ? best : undefined;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      cur.push(Math.min((prev[j] ?? 0) + 1, (cur[j - 1] ?? 0) + 1, (prev[j - 1] ?? 0) + cost));
    }
    prev = cur;
  }
  return prev[b.length] ?? 0;
}

/** Checks `${...}` references; returns problems (message only). */
export function checkVariables(text: string): string[] {
  const out: string[] = [];
  let i = 0;
  for (;;) {
    const at = text.indexOf('${', i);
    if (at < 0) break;
    const end = text.indexOf('}', at);
    if (end < 0) {
      out.push(`unterminated variable at position ${at}`);
      break;
    }
    const name = text.slice(at + 2, end);
    const attr = name.startsWith('device.attr.') ? name.slice(12) : undefined;
    if (attr !== undefined ? !ATTR_NAME.test(attr) : !(VARIABLES as readonly string[]).includes(name)) {
      const hint = closest(name, [...VARIABLES, 'device.attr.<name>']);
      out.push(`unknown variable \${${name}}${hint ? ` (did you mean \${${hint}}?)` : ''}`);
    }
    i = end + 1;
  }
  // A `$` that does not start a variable is almost always a typo for one.
  if (/\$(?!\{)/.test(text)) out.push('stray `$`: variables are written ${name}');
  return out;
}

/** Problems with an MQTT topic filter that may contain variables ([MQTT-4.7.1-1..3]). */
export function checkTopicFilter(filter: string): string[] {
  const out: string[] = [];
  if (filter.length === 0) return ['empty topic filter'];
  if (Buffer.byteLength(filter, 'utf8') > 65535) out.push('topic filter longer than 65535 bytes');
  if (filter.includes('\u0000')) out.push('topic filter contains NUL');
  if (filter.includes('*'))
    out.push('`*` is not an MQTT wildcard in a topic filter: use `+` (one level) or `#`');
  const levels = filter.split('/');
  levels.forEach((lvl, i) => {
    if (lvl.includes('#') && (lvl !== '#' || i !== levels.length - 1))
      out.push(`\`#\` must be a whole level and the last one (level ${i + 1}: '${lvl}')`);
    if (lvl.includes('+') && lvl !== '+') out.push(`\`+\` must be a whole level (level ${i + 1}: '${lvl}')`);
  });
  return out;
}

function stringList(v: unknown, path: string, problems: Problem[], max = MAX_LIST): string[] | undefined {
  if (!Array.isArray(v) || v.length === 0 || v.length > max || v.some((x) => typeof x !== 'string')) {
    problems.push({
      path,
      message: `must be a list of 1 to ${max} strings`,
      code: 'ERR_POLICY_INVALID',
    });
    return undefined;
  }
  return v as string[];
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Normalises one resource: `topic/a/b` is shorthand for `bulwark:${principal.tenant}:topic/a/b`.
 * The tenant part must keep the statement inside the owning tenant.
 */
function checkResource(raw: string, path: string, owner: string | undefined, problems: Problem[]): string {
  const bad = (message: string, code: ErrorCode = 'ERR_POLICY_BAD_RESOURCE') =>
    problems.push({ path, message, code });
  if (raw.length === 0 || raw.length > 1024) {
    bad('resource must be 1 to 1024 characters');
    return raw;
  }
  const full = raw.startsWith('bulwark:') ? raw : `bulwark:\${principal.tenant}:${raw}`;
  for (const m of checkVariables(full)) bad(m, 'ERR_POLICY_BAD_VARIABLE');
  const m = /^bulwark:([^:]*):(.*)$/s.exec(full);
  if (!m) {
    bad('resource must be bulwark:<tenant>:<kind>/<id> or <kind>/<id>');
    return full;
  }
  const tenant = m[1] ?? '';
  const rest = m[2] ?? '';
  const tenantOk =
    tenant === '${principal.tenant}' ||
    tenant === '${device.tenant}' ||
    (owner !== undefined && tenant === owner);
  if (!tenantOk)
    bad(
      `the tenant part must be \${principal.tenant}, \${device.tenant}${owner ? ` or ${owner}` : ''}: a policy cannot name another tenant`,
    );
  if (rest === '*') return full;
  const slash = rest.indexOf('/');
  const kind = slash < 0 ? rest : rest.slice(0, slash);
  if (slash < 0 || !KIND.test(kind)) {
    bad(`'${rest}' is not <kind>/<id> (kind: lower-case letters, e.g. topic, device, fleet)`);
    return full;
  }
  if (kind === 'topic') {
    for (const msg of checkTopicFilter(rest.slice(6))) bad(msg, 'ERR_POLICY_BAD_TOPIC_FILTER');
  }
  return full;
}

function checkConditions(v: unknown, path: string, problems: Problem[]): Conditions | undefined {
  const bad = (p: string, message: string) =>
    problems.push({ path: `${path}.${p}`, message, code: 'ERR_POLICY_BAD_CONDITION' });
  if (!isRecord(v)) {
    problems.push({ path, message: 'must be an object', code: 'ERR_POLICY_BAD_CONDITION' });
    return undefined;
  }
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(v)) {
    switch (key) {
      case 'sourceIp':
      case 'notSourceIp': {
        const list = stringList(value, `${path}.${key}`, problems);
        if (!list) break;
        list.forEach((c, i) => {
          if (!parseCidr(c))
            bad(`${key}[${i}]`, `'${c}' is not an IP address or CIDR block with zero host bits`);
        });
        out[key] = list;
        break;
      }
      case 'timeWindow': {
        if (!isRecord(value)) {
          bad(key, 'must be { from: "HH:MM", to: "HH:MM", days?: [...] }');
          break;
        }
        const { from, to, days, ...extra } = value;
        if (typeof from !== 'string' || !HHMM.test(from)) bad(`${key}.from`, 'must be HH:MM (UTC)');
        if (typeof to !== 'string' || !HHMM.test(to)) bad(`${key}.to`, 'must be HH:MM (UTC)');
        if (from === to) bad(key, 'from and to must differ');
        for (const k of Object.keys(extra)) bad(`${key}.${k}`, 'unknown field');
        if (days !== undefined) {
          const list = stringList(days, `${path}.${key}.days`, problems, 7);
          list?.forEach((d, i) => {
            if (!(DAYS as readonly string[]).includes(d))
              bad(`${key}.days[${i}]`, `'${d}' is not one of ${DAYS.join(', ')}`);
          });
        }
        out[key] = value;
        break;
      }
      case 'mfa':
        if (typeof value !== 'boolean') bad(key, 'must be true or false');
        out[key] = value;
        break;
      case 'deviceAttr':
      case 'certAttr': {
        if (!isRecord(value) || Object.keys(value).length === 0) {
          bad(key, 'must be an object of name -> list of values');
          break;
        }
        for (const [name, values] of Object.entries(value)) {
          if (key === 'deviceAttr' ? !ATTR_NAME.test(name) : !CERT_ATTRS.includes(name))
            bad(
              `${key}.${name}`,
              key === 'deviceAttr'
                ? 'invalid attribute name'
                : `unknown certificate attribute (known: ${CERT_ATTRS.join(', ')})`,
            );
          stringList(values, `${path}.${key}.${name}`, problems);
        }
        out[key] = value;
        break;
      }
      case 'deviceCap': {
        if (!isRecord(value) || Object.keys(value).length === 0) {
          bad(key, 'must be an object of cap.<field> -> list of values or {"<op>": value}');
          break;
        }
        const fields: Record<string, unknown> = {};
        for (const [name, test] of Object.entries(value)) {
          if (!isCapabilityField(name)) {
            const near = closest(name, CAPABILITY_FIELDS);
            bad(
              `${key}.${name}`,
              `unknown capability field${near ? ` (did you mean ${near}?)` : ''} (known: ${CAPABILITY_FIELDS.join(', ')})`,
            );
            continue;
          }
          if (Array.isArray(test)) {
            fields[name] = stringList(test, `${path}.${key}.${name}`, problems);
            continue;
          }
          if (!isRecord(test) || Object.keys(test).length === 0) {
            bad(`${key}.${name}`, `must be a list of values or {"<op>": value} (op: ${CAP_OPS.join(' ')})`);
            continue;
          }
          const ops: Record<string, string> = {};
          for (const [op, operand] of Object.entries(test)) {
            if (!(CAP_OPS as readonly string[]).includes(op))
              bad(`${key}.${name}.${op}`, `unknown operator (known: ${CAP_OPS.join(' ')})`);
            else if (
              (typeof operand !== 'string' || operand === '' || operand.length > 256) &&
              !(typeof operand === 'number' && Number.isFinite(operand))
            )
              bad(`${key}.${name}.${op}`, 'must be a non-empty string or a number');
            else ops[op] = String(operand);
          }
          fields[name] = ops;
        }
        out[key] = fields;
        break;
      }
      default:
        bad(
          key,
          `unknown condition${closest(key, CONDITIONS) ? ` (did you mean ${closest(key, CONDITIONS)}?)` : ''}`,
        );
    }
  }
  return out as Conditions;
}

/**
 * Validates an untrusted policy document and returns it normalised (resources in full form). `owner` is
 * the tenant that owns the policy: literal tenant names in resources must be this one.
 */
export function validatePolicyDocument(input: unknown, owner?: string): PolicyDocument {
  const problems: Problem[] = [];
  const invalid = (path: string, message: string) =>
    problems.push({ path, message, code: 'ERR_POLICY_INVALID' });
  if (!isRecord(input)) throw new AppError('ERR_POLICY_INVALID', 'A policy document is a JSON object');
  const { id, description, statements, ...extra } = input;
  for (const k of Object.keys(extra)) invalid(k, 'unknown field');
  if (typeof id !== 'string' || !POLICY_ID.test(id))
    invalid(
      'id',
      'must be 1-64 characters: lower-case letters, digits, `.`, `_`, `-`, starting with a letter or digit',
    );
  if (description !== undefined && (typeof description !== 'string' || description.length > 1024))
    invalid('description', 'must be a string of at most 1024 characters');
  const out: Statement[] = [];
  if (!Array.isArray(statements) || statements.length === 0 || statements.length > MAX_STATEMENTS) {
    invalid('statements', `must be a list of 1 to ${MAX_STATEMENTS} statements`);
  } else {
    const sids = new Set<string>();
    statements.forEach((st: unknown, i) => {
      const path = `statements[${i}]`;
      if (!isRecord(st)) {
        invalid(path, 'must be an object');
        return;
      }
      const { sid, effect, actions, resources, notResources, conditions, ...more } = st;
      for (const k of Object.keys(more)) invalid(`${path}.${k}`, 'unknown field');
      if (sid !== undefined) {
        if (typeof sid !== 'string' || !SID.test(sid))
          invalid(`${path}.sid`, 'must be 1-64 letters, digits, `_` or `-`');
        else if (sids.has(sid)) invalid(`${path}.sid`, `duplicate sid '${sid}'`);
        else sids.add(sid);
      }
      if (effect !== 'allow' && effect !== 'deny') invalid(`${path}.effect`, "must be 'allow' or 'deny'");
      const acts = stringList(actions, `${path}.actions`, problems) ?? [];
      acts.forEach((a, j) => {
        if (!isValidActionPattern(a)) {
          const hint = closest(a, [...ACTIONS]);
          problems.push({
            path: `${path}.actions[${j}]`,
            message: `unknown action '${a}'${hint ? ` (did you mean '${hint}'?)` : ''}`,
            code: 'ERR_POLICY_UNKNOWN_ACTION',
          });
        }
      });
      if ((resources === undefined) === (notResources === undefined)) {
        invalid(path, 'needs exactly one of resources or notResources');
      }
      if (notResources !== undefined && effect !== 'deny')
        invalid(
          `${path}.notResources`,
          'only deny statements may use notResources ("deny everything except")',
        );
      const res =
        resources !== undefined
          ? stringList(resources, `${path}.resources`, problems)?.map((r, j) =>
              checkResource(r, `${path}.resources[${j}]`, owner, problems),
            )
          : undefined;
      const notRes =
        notResources !== undefined
          ? stringList(notResources, `${path}.notResources`, problems)?.map((r, j) =>
              checkResource(r, `${path}.notResources[${j}]`, owner, problems),
            )
          : undefined;
      const cond =
        conditions !== undefined ? checkConditions(conditions, `${path}.conditions`, problems) : undefined;
      out.push({
        ...(typeof sid === 'string' ? { sid } : {}),
        effect: effect === 'deny' ? 'deny' : 'allow',
        actions: acts,
        ...(res ? { resources: res } : {}),
        ...(notRes ? { notResources: notRes } : {}),
        ...(cond ? { conditions: cond } : {}),
      });
    });
  }
  if (problems.length > 0) {
    const codes = new Set(problems.map((p) => p.code));
    const code: ErrorCode =
      codes.size === 1 ? (problems[0]?.code ?? 'ERR_POLICY_INVALID') : 'ERR_POLICY_INVALID';
    const first = problems[0];
    throw new AppError(
      code,
      problems.length === 1 && first
        ? `${first.path}: ${first.message}`
        : `${problems.length} problems in the policy document`,
      { errors: problems.map((p) => ({ path: p.path, message: `${p.message} (${p.code})` })) },
    );
  }
  return {
    id: id as string,
    ...(typeof description === 'string' ? { description } : {}),
    statements: out,
  };
}
