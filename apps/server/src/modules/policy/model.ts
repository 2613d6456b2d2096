// Policy documents: statements that allow or deny actions on resources, with variables.
// Resources are names in one grammar for every transport:
//   bulwark:<tenant>:device/<deviceId>      a device (API)
//   bulwark:<tenant>:topic/<mqtt topic>     an MQTT topic (publish / subscribe filter / receive)
//   bulwark:<tenant>:client/<clientId>      an MQTT client id (connect)
//   bulwark:<tenant>:<kind>/<id>            any other API object (certificate, audit, token...)
// In a statement's resource, `*` matches any run of characters within the resource name, and in the
// topic part MQTT wildcards apply (`+` one level, `#` the rest). Variables: ${principal.id},
// ${principal.tenant}, ${device.id}, ${device.tenant}, ${device.attr.<name>}.

export type Effect = 'allow' | 'deny';

export interface Statement {
  readonly sid?: string;
  readonly effect: Effect;
  readonly actions: readonly string[];
  readonly resources: readonly string[];
}

export interface PolicyDocument {
  readonly id: string;
  readonly description?: string;
  readonly statements: readonly Statement[];
}

export type Principal =
  | {
      readonly type: 'device';
      readonly id: string;
      readonly tenant: string;
      readonly attributes?: Readonly<Record<string, string>>;
    }
  | {
      readonly type: 'user' | 'service';
      readonly id: string;
      readonly tenant: string;
      readonly role: string;
      readonly name?: string;
    };

export interface AuthorizeContext {
  readonly sourceIp?: string;
}

export interface Decision {
  readonly allowed: boolean;
  /** The statements that decided: the deny that won, or the allows that matched. */
  readonly matched: readonly { policy: string; sid: string | undefined; effect: Effect }[];
}

/** Actions known to the engine; validated on policy write. */
export const ACTIONS = [
  'mqtt:connect',
  'mqtt:publish',
  'mqtt:subscribe',
  'mqtt:receive',
  'devices:read',
  'devices:write',
  'certs:read',
  'certs:issue',
  'certs:revoke',
  'telemetry:read',
  'audit:read',
  'tokens:read',
  'tokens:write',
  'policies:read',
  'policies:write',
] as const;

export type Action = (typeof ACTIONS)[number];

export function resourceName(tenant: string, kind: string, id: string): string {
  return `bulwark:${tenant}:${kind}/${id}`;
}
