// Policy documents: statements that allow or deny actions on resources, with variables and conditions.
// Resources are names in one grammar for every transport:
//   bulwark:<tenant>:device/<deviceId>      a device (API)
//   bulwark:<tenant>:topic/<mqtt topic>     an MQTT topic (publish / subscribe filter / receive)
//   bulwark:<tenant>:client/<clientId>      an MQTT client id (connect)
//   bulwark:<tenant>:fleet/<path>           a fleet (path of segments joined by /)
//   bulwark:<tenant>:<kind>/<id>            any other API object (certificate, group, policy, audit...)
// In a statement's resource, `*` matches any run of characters within the resource name, and in the
// topic part MQTT wildcards apply (`+` one level, `#` the rest). Variables: ${principal.id},
// ${principal.tenant}, ${principal.type}, ${device.id}, ${device.tenant}, ${device.fleet},
// ${device.attr.<name>}. The full grammar is in docs/policies.md.

export type Effect = 'allow' | 'deny';

/** Every condition present must hold for the statement to apply (AND); list values are alternatives (OR). */
export interface Conditions {
  /** The request comes from one of these networks (CIDR, IPv4 or IPv6). */
  readonly sourceIp?: readonly string[];
  /** The request does not come from any of these networks. */
  readonly notSourceIp?: readonly string[];
  /** UTC time of day `HH:MM`-`HH:MM` (wrapping past midnight when from > to), optionally on some days only. */
  readonly timeWindow?: { readonly from: string; readonly to: string; readonly days?: readonly string[] };
  /** The caller authenticated with a second factor (people only; devices and tokens never have it). */
  readonly mfa?: boolean;
  /** Device attribute has one of the listed values. */
  readonly deviceAttr?: Readonly<Record<string, readonly string[]>>;
  /** Client certificate attribute (serial, fingerprint256) has one of the listed values. */
  readonly certAttr?: Readonly<Record<string, readonly string[]>>;
  /**
   * Field of the device's latest capability report (`cap.listeningPorts`, see CAPABILITY_FIELDS of
   * @bulwark/protocol): one of the listed values, or every comparison of `{">": "0"}` holds.
   */
  readonly deviceCap?: Readonly<Record<string, readonly string[] | Readonly<Partial<Record<CapOp, string>>>>>;
}

/** Comparisons of a `deviceCap` condition; `<` and friends compare versions (`2.10 > 2.9`, `3 > 0`). */
export type CapOp = '=' | '!=' | '<' | '<=' | '>' | '>=' | 'contains';
export const CAP_OPS: readonly CapOp[] = ['=', '!=', '<', '<=', '>', '>=', 'contains'];

export interface Statement {
  readonly sid?: string;
  readonly effect: Effect;
  readonly actions: readonly string[];
  /** Resources the statement applies to. */
  readonly resources?: readonly string[];
  /** Deny statements only: applies to every resource except these ("limit to"). */
  readonly notResources?: readonly string[];
  readonly conditions?: Conditions;
}

export interface PolicyDocument {
  readonly id: string;
  readonly description?: string;
  readonly statements: readonly Statement[];
}

/** Where a policy is attached; `platform` applies to every tenant. */
export type AttachmentTargetType = 'platform' | 'tenant' | 'fleet' | 'group' | 'device';
export const ATTACHMENT_TARGET_TYPES: readonly AttachmentTargetType[] = [
  'platform',
  'tenant',
  'fleet',
  'group',
  'device',
];

export interface AttachmentPoint {
  readonly type: AttachmentTargetType | 'builtin' | 'role';
  readonly id: string;
}

/** A document in a principal's effective set, with where it came from. */
export interface EffectiveDocument {
  readonly document: PolicyDocument;
  readonly version: number;
  readonly attachedAt: readonly AttachmentPoint[];
}

export type Principal =
  | {
      readonly type: 'device';
      readonly id: string;
      readonly tenant: string;
      readonly attributes?: Readonly<Record<string, string>>;
      /** Flattened latest capability report (`cap.<field>` → value). */
      readonly capabilities?: Readonly<Record<string, string>>;
      /** Fleet path, '' when the device is in no fleet. */
      readonly fleet?: string;
      /** Groups (static and dynamic) the device is in. */
      readonly groups?: readonly string[];
    }
  | {
      readonly type: 'user' | 'service';
      readonly id: string;
      readonly tenant: string;
      readonly role: string;
      readonly name?: string;
      /** Signed in with a second factor (sessions only; tokens never have it). */
      readonly mfa?: boolean;
      readonly authMethod?: 'token' | 'session' | 'oidc';
      /**
       * Permission boundaries (token scope, fleet-scoped role, MFA enrollment pending): every one must
       * also allow an action, so the effective permission is the intersection (see boundary.ts).
       */
      readonly boundaries?: readonly Boundary[];
    };

/** Limits a principal to some actions and/or a fleet subtree; it never grants anything by itself. */
export interface Boundary {
  /** Why it exists, for explanations: `token`, `role-scope`, `mfa-enrollment`. */
  readonly kind: string;
  /** Action patterns (`devices:*`); absent: every action. */
  readonly actions?: readonly string[];
  /** Fleet path: only that fleet, its sub-fleets and objects placed in them (plus the principal's own account). */
  readonly fleet?: string;
  /** Only the principal's own account (`account/<id>` and below). */
  readonly selfOnly?: boolean;
}

export interface AuthorizeContext {
  readonly sourceIp?: string;
  /** Fleet path of the object the resource names, when the caller knows it (fleet-scoped boundaries). */
  readonly resourceFleet?: string;
  readonly mfa?: boolean;
  /** Client certificate attributes (MQTT sessions). */
  readonly cert?: Readonly<Record<string, string>>;
  /** Epoch ms for time-window conditions; the engine's clock when absent. */
  readonly now?: number;
}

export interface MatchedStatement {
  readonly policy: string;
  readonly sid: string | undefined;
  /** Position of the statement in its document (0-based). */
  readonly statement: number;
  readonly effect: Effect;
}

export interface Decision {
  readonly allowed: boolean;
  /** The statements that decided: every deny that matched when denied, else the allows that matched. */
  readonly matched: readonly MatchedStatement[];
}

/** Actions known to the engine; validated on policy write. */
export const ACTIONS = [
  'mqtt:connect',
  'mqtt:publish',
  'mqtt:subscribe',
  'mqtt:receive',
  'ota:download',
  'devices:read',
  'devices:write',
  'devices:command',
  'fleets:read',
  'fleets:write',
  'groups:read',
  'groups:write',
  'certs:read',
  'certs:issue',
  'certs:revoke',
  'certs:enroll-codes',
  'cas:read',
  'cas:write',
  'telemetry:read',
  'audit:read',
  'metrics:read',
  'tokens:read',
  'tokens:write',
  'policies:read',
  'policies:write',
  'accounts:read',
  'accounts:write',
  'roles:read',
  'roles:write',
  'sessions:read',
  'sessions:write',
  'credentials:write',
  'idp:read',
  'idp:write',
  'webhooks:read',
  'webhooks:write',
  'releases:read',
  'releases:write',
  'campaigns:read',
  'campaigns:write',
  'posture:read',
  'posture:write',
] as const;

export type Action = (typeof ACTIONS)[number];

export function resourceName(tenant: string, kind: string, id: string): string {
  return `bulwark:${tenant}:${kind}/${id}`;
}

/** A policy as stored: the document plus its version history position. */
export interface StoredPolicy {
  readonly tenant: string;
  readonly id: string;
  readonly version: number;
  readonly document: PolicyDocument;
  readonly createdAt: number;
  readonly updatedAt: number;
  readonly updatedBy: string;
}

export interface PolicyVersion {
  readonly tenant: string;
  readonly id: string;
  readonly version: number;
  /** null: the policy was deleted at this version. */
  readonly document: PolicyDocument | null;
  readonly createdAt: number;
  readonly createdBy: string;
}

export interface Attachment {
  readonly tenant: string;
  readonly policyId: string;
  readonly targetType: AttachmentTargetType;
  readonly targetId: string;
  readonly createdAt: number;
}

/** Persistence port for policies; store.ts implements it on SQLite and PostgreSQL. */
export interface PolicyStore {
  /** Every policy and attachment (the engine keeps them in memory; they are few compared to devices). */
  loadAll(): Promise<{ policies: StoredPolicy[]; attachments: Attachment[] }>;
  /** Returns the version given (continuing the history of a deleted policy with the same id). */
  insert(p: StoredPolicy): Promise<number>;
  /** Optimistic: updates only when the stored version is `expectedVersion`. */
  update(p: StoredPolicy, expectedVersion: number): Promise<boolean>;
  delete(tenant: string, id: string, by: string, now: number, version: number): Promise<boolean>;
  versions(tenant: string, id: string): Promise<PolicyVersion[]>;
  attach(a: Attachment): Promise<boolean>;
  detach(tenant: string, policyId: string, targetType: string, targetId: string): Promise<boolean>;
  /** Change feed for other nodes: appended with every write, read with `changesSince`. */
  appendChange(change: PolicyChangeRecord): Promise<number>;
  changesSince(seq: number, limit: number): Promise<(PolicyChangeRecord & { seq: number })[]>;
  lastChangeSeq(): Promise<number>;
}

/** A change that may alter effective policies, in a form every node can replay. */
export interface PolicyChangeRecord {
  /** null: every tenant (platform attachments). */
  readonly tenant: string | null;
  readonly scope: ChangeScope;
  readonly reason: string;
  /** Policies or attachments changed: nodes reload them from the store. */
  readonly reload: boolean;
  /** Device placement (fleet, groups, attributes) changed: sessions reload it before recompiling. */
  readonly placementChanged: boolean;
  /** Node that made the change; it applied the change already. */
  readonly origin: string;
}

export type ChangeScope =
  | { readonly kind: 'all' }
  | { readonly kind: 'fleet'; readonly path: string }
  | { readonly kind: 'group'; readonly name: string }
  | { readonly kind: 'devices'; readonly ids: readonly string[] };

/** Emitted to transports: which principals' effective policies may have changed. */
export type PolicyChange = Omit<PolicyChangeRecord, 'origin' | 'reload'>;
