// Flags overly permissive statements. Pure and cheap, so the posture checks can run it over every
// policy of a tenant; a finding says which statement, which rule and why it matters.
import { parseTopicResource } from './engine.ts';
import type { PolicyDocument, Statement } from './model.ts';

export type LintSeverity = 'high' | 'medium' | 'low';

export interface LintFinding {
  readonly rule: string;
  readonly severity: LintSeverity;
  readonly statement: number;
  readonly sid: string | undefined;
  readonly message: string;
}

const MQTT_DATA = ['mqtt:publish', 'mqtt:subscribe', 'mqtt:receive'];

function grantsMqttData(st: Statement): boolean {
  return st.actions.some((a) => a === '*' || a === 'mqtt:*' || MQTT_DATA.includes(a));
}

export const LINT_RULES: Readonly<Record<string, { severity: LintSeverity; description: string }>> = {
  'wildcard-action': {
    severity: 'high',
    description: 'An allow with action `*` grants every action, including ones added in later versions.',
  },
  'service-wildcard-action': {
    severity: 'medium',
    description: 'An allow with `<service>:*` grants every action of the service, present and future.',
  },
  'topic-everything': {
    severity: 'high',
    description: 'An allow on `#` (or a filter starting with a wildcard) lets devices reach every topic.',
  },
  'other-devices-topics': {
    severity: 'medium',
    description: 'An allow on `devices/+/…` or `devices/#` reaches other devices\u2019 namespaces.',
  },
  'resource-everything': {
    severity: 'high',
    description: 'An allow on `bulwark:<tenant>:*` applies to every object of the tenant.',
  },
  'allow-not-scoped-to-device': {
    severity: 'low',
    description:
      'An allow on MQTT topics that uses no ${device.…} variable is shared by every device it is attached to.',
  },
};

export function lintPolicy(doc: PolicyDocument): LintFinding[] {
  const findings: LintFinding[] = [];
  doc.statements.forEach((st, statement) => {
    if (st.effect !== 'allow') return;
    const add = (rule: string, message: string) =>
      findings.push({ rule, severity: LINT_RULES[rule]?.severity ?? 'low', statement, sid: st.sid, message });
    if (st.actions.includes('*')) add('wildcard-action', 'action `*` grants every action');
    for (const a of st.actions) {
      if (a !== '*' && a.endsWith(':*'))
        add('service-wildcard-action', `\`${a}\` grants every ${a.slice(0, -2)} action`);
    }
    const mqtt = grantsMqttData(st);
    for (const r of st.resources ?? []) {
      if (/^bulwark:[^:]*:\*$/.test(r))
        add('resource-everything', `\`${r}\` covers every object of the tenant`);
      const t = parseTopicResource(r);
      if (!t || !mqtt) continue;
      const first = t.topic.split('/')[0];
      if (first === '#' || first === '+')
        add('topic-everything', `\`${t.topic}\` reaches every topic${first === '+' ? ' at its depth' : ''}`);
      else if (/^devices\/(\+|#)(\/|$)/.test(t.topic))
        add('other-devices-topics', `\`${t.topic}\` reaches the namespace of every device`);
      else if (!t.topic.includes('${device.'))
        add('allow-not-scoped-to-device', `\`${t.topic}\` is the same topic for every device`);
    }
  });
  return findings;
}
