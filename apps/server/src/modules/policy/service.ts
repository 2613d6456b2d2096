import { AppError, type Clock, type Logger } from '../../kernel/index.ts';
import { compile, parseTopicResource, substitute, variablesOf, type CompiledPolicy } from './engine.ts';
import {
  deviceDefaultPolicy,
  QUARANTINE_GROUP,
  quarantinePolicy,
  rolePolicies,
  selfServicePolicy,
} from './builtin.ts';
import { createBoundaryChecker } from './boundary.ts';
import { coversPermissions, type Coverage } from './covers.ts';
import { lintPolicy, type LintFinding } from './lint.ts';
import { createMemoryPolicyStore } from './memory-store.ts';
import { validatePolicyDocument } from './validate.ts';
import {
  ACTIONS,
  type Attachment,
  type AttachmentPoint,
  type AttachmentTargetType,
  type AuthorizeContext,
  type Boundary,
  type ChangeScope,
  type Decision,
  type EffectiveDocument,
  type PolicyChange,
  type PolicyChangeRecord,
  type PolicyDocument,
  type PolicyStore,
  type PolicyVersion,
  type Principal,
  type StoredPolicy,
} from './model.ts';

/** A device as the policy engine sees it: where it sits (fleet, groups) and what it is (attributes). */
export interface DevicePlacement {
  readonly id: string;
  readonly fleet: string;
  readonly groups: readonly string[];
  readonly attributes: Readonly<Record<string, string>>;
  /** Flattened latest capability report (`cap.<field>` → value). */
  readonly capabilities?: Readonly<Record<string, string>>;
}

/** Lookups the policy service needs from the devices and IAM modules, wired in app.ts. */
export interface PolicyDirectory {
  device(tenant: string, id: string): Promise<DevicePlacement | undefined>;
  /** Devices an attachment point covers, keyset-paged by id (for the dry-run diff). */
  devicesIn(
    tenant: string,
    target: { type: 'tenant' | 'fleet' | 'group' | 'device'; id: string },
    page: { limit: number; after?: string },
  ): Promise<DevicePlacement[]>;
  targetExists(tenant: string, type: 'fleet' | 'group' | 'device', id: string): Promise<boolean>;
  /** A person's or program's account: its role and standing boundaries (a fleet-scoped role...). */
  account(
    tenant: string,
    id: string,
  ): Promise<{ kind: 'user' | 'service'; role: string; boundaries?: readonly Boundary[] } | undefined>;
  /** Every person and program of the tenant (a tenant-wide policy applies to them too): for the diff. */
  accounts?(tenant: string): Promise<readonly AccountPlacement[]>;
}

/** A person or program as the policy engine sees it. */
export interface AccountPlacement {
  readonly id: string;
  readonly kind: 'user' | 'service';
  readonly role: string;
  readonly boundaries?: readonly Boundary[];
}

export interface PolicyActor {
  readonly tenant: string;
  readonly id: string;
}

export interface PolicyView {
  readonly id: string;
  readonly tenant: string | null;
  readonly builtin: boolean;
  readonly version: number;
  readonly document: PolicyDocument;
  readonly attachments: readonly AttachmentPoint[];
  readonly createdAt: number | null;
  readonly updatedAt: number | null;
  readonly updatedBy: string | null;
}

export interface ExplainRequest {
  readonly principal: { readonly type: 'device' | 'user' | 'service'; readonly id: string };
  readonly action: string;
  readonly resource: string;
  readonly context?: AuthorizeContext;
}

export interface Explanation {
  readonly principal: Principal;
  readonly action: string;
  readonly resource: string;
  readonly allowed: boolean;
  /**
   * allow: an allow matched, no deny, and every boundary lets it through; deny: a deny matched;
   * implicit-deny: nothing matched; boundary-deny: the policies allow it but a permission boundary
   * (token scope, fleet-scoped role, MFA enrollment pending) does not.
   */
  readonly outcome: 'allow' | 'deny' | 'implicit-deny' | 'boundary-deny';
  readonly matched: readonly {
    readonly policy: string;
    readonly version: number;
    readonly sid: string | undefined;
    readonly statement: number;
    readonly effect: 'allow' | 'deny';
    readonly attachedAt: readonly AttachmentPoint[];
  }[];
  /** Every policy that was considered, in evaluation order, with where it is attached. */
  readonly evaluated: readonly {
    readonly policy: string;
    readonly version: number;
    readonly attachedAt: readonly AttachmentPoint[];
  }[];
  /** The principal's permission boundaries (people and programs) and whether each lets the request through. */
  readonly boundaries: readonly { readonly boundary: Boundary; readonly allowed: boolean }[];
}

export type DiffProposal =
  | { readonly policyId: string; readonly document: unknown }
  | { readonly policyId: string; readonly delete: true }
  | { readonly policyId: string; readonly attach: { type: AttachmentTargetType; id: string } }
  | { readonly policyId: string; readonly detach: { type: AttachmentTargetType; id: string } };

export interface PermissionChange {
  readonly action: string;
  readonly resource: string;
}

export interface DiffResult {
  readonly devices: readonly {
    readonly id: string;
    readonly gained: readonly PermissionChange[];
    readonly lost: readonly PermissionChange[];
  }[];
  /** People and programs (a policy attached to the tenant or the platform applies to them too). */
  readonly accounts: readonly {
    readonly type: 'user' | 'service';
    readonly id: string;
    readonly gained: readonly PermissionChange[];
    readonly lost: readonly PermissionChange[];
  }[];
  /** Devices evaluated; at most `maxDevices`. */
  readonly evaluated: number;
  readonly truncated: boolean;
  readonly lint: readonly LintFinding[];
}

export interface PolicyService {
  /** The single decision point for devices, people and programs. */
  authorize(principal: Principal, action: string, resource: string, context?: AuthorizeContext): Decision;
  /** The principal's effective policy, compiled once (per MQTT session, per token) for the hot path. */
  compileFor(principal: Principal, options?: { context?: AuthorizeContext }): CompiledPolicy;
  documentsFor(principal: Principal): readonly EffectiveDocument[];
  /**
   * Would `requested` hold only permissions `grantor` holds? Asked by every route that creates roles,
   * tokens, service accounts or role mappings (no privilege escalation by construction).
   */
  covers(grantor: Principal, requested: Principal): Coverage;
  /** Loads policies and attachments from the store; call once at start. */
  load(): Promise<void>;
  list(tenant: string): PolicyView[];
  get(tenant: string, id: string): PolicyView;
  create(actor: PolicyActor, input: unknown): Promise<PolicyView>;
  update(actor: PolicyActor, id: string, input: unknown, expectedVersion?: number): Promise<PolicyView>;
  remove(actor: PolicyActor, id: string): Promise<void>;
  versions(tenant: string, id: string): Promise<PolicyVersion[]>;
  attach(
    actor: PolicyActor,
    policyId: string,
    target: { type: AttachmentTargetType; id: string },
  ): Promise<Attachment>;
  detach(
    actor: PolicyActor,
    policyId: string,
    target: { type: AttachmentTargetType; id: string },
  ): Promise<void>;
  /** Attachments of the tenant (and, for the platform tenant, the platform's), optionally at one target. */
  attachments(tenant: string, target?: { type: AttachmentTargetType; id: string }): Attachment[];
  explain(tenant: string, request: ExplainRequest): Promise<Explanation>;
  diff(tenant: string, proposal: DiffProposal, options?: { maxDevices?: number }): Promise<DiffResult>;
  lint(tenant: string, input: unknown): LintFinding[];
  /** Something outside the policy module changed placement (device moved, group membership, attributes). */
  notify(change: PolicyChange): Promise<void>;
  onChange(listener: (change: PolicyChange) => void): () => void;
  /** Whether a change applies to a principal; transports use it to find the sessions to recompile. */
  affects(change: PolicyChange, principal: Principal): boolean;
  /** Replays changes other nodes made (shared PostgreSQL); app.ts polls it. */
  sync(): Promise<number>;
}

export interface PolicyServiceDeps {
  store?: PolicyStore;
  directory?: PolicyDirectory;
  clock?: Clock;
  logger?: Logger;
  /** The operator's tenant: only its principals may attach policies at the platform level. */
  platformTenant?: string;
  /** Identifies this process in the change feed. */
  nodeId?: string;
  /** Custom (stored) roles of people and programs; `revision` changes whenever one does. */
  roles?: { document(tenant: string, name: string): PolicyDocument | undefined; revision(): number };
}

const BUILTINS: readonly PolicyDocument[] = [deviceDefaultPolicy, quarantinePolicy];

const targetKey = (type: string, tenant: string, id: string) => `${type}\u0000${tenant}\u0000${id}`;

/** A topic the filter matches: each wildcard level becomes `_`. */
function concreteTopic(resource: string): string {
  const at = resource.indexOf(':topic/') + 7;
  const levels = resource
    .slice(at)
    .split('/')
    .map((l) => (l === '+' || l === '#' ? '_' : l));
  return resource.slice(0, at) + levels.join('/');
}

/** `plant-a/line-3/robots` -> ['plant-a', 'plant-a/line-3', 'plant-a/line-3/robots']. */
export function fleetAncestors(path: string): string[] {
  if (!path) return [];
  const parts = path.split('/');
  return parts.map((_, i) => parts.slice(0, i + 1).join('/'));
}

export function createPolicyService(deps: PolicyServiceDeps = {}): PolicyService {
  const store = deps.store ?? createMemoryPolicyStore();
  const now = () => (deps.clock ?? { now: Date.now }).now();
  const nodeId = deps.nodeId ?? `node-${Math.random().toString(36).slice(2)}`;
  const listeners = new Set<(c: PolicyChange) => void>();

  // In memory: every policy and attachment (few, compared with devices), so compiling touches no database.
  let policies = new Map<string, StoredPolicy>(); // tenant \0 id
  let byTarget = new Map<string, Attachment[]>();
  let byPolicy = new Map<string, Attachment[]>(); // tenant \0 policyId
  let lastSeq = 0;
  const roleCache = new Map<string, CompiledPolicy>();
  // Devices of one fleet with the same groups share their effective documents (a tenant-wide change
  // recompiles every live session: most of them sit in a few fleets). Dropped on any policy change.
  const placementCache = new Map<string, readonly EffectiveDocument[]>();
  const forget = () => {
    roleCache.clear();
    placementCache.clear();
  };
  const boundaries = createBoundaryChecker(now);

  const index = (all: { policies: StoredPolicy[]; attachments: Attachment[] }) => {
    policies = new Map(all.policies.map((p) => [`${p.tenant}\u0000${p.id}`, p]));
    byTarget = new Map();
    byPolicy = new Map();
    for (const a of all.attachments) {
      const tk =
        a.targetType === 'platform'
          ? targetKey('platform', '', '')
          : targetKey(a.targetType, a.tenant, a.targetId);
      (byTarget.get(tk) ?? byTarget.set(tk, []).get(tk))?.push(a);
      const pk = `${a.tenant}\u0000${a.policyId}`;
      (byPolicy.get(pk) ?? byPolicy.set(pk, []).get(pk))?.push(a);
    }
    forget();
  };
  const reload = async () => index(await store.loadAll());
  // This node's own writes update the index in place (a full reload per write would make bulk
  // changes quadratic); changes from other nodes arrive through the feed and reload everything.
  const putPolicy = (p: StoredPolicy) => {
    policies.set(`${p.tenant}\u0000${p.id}`, p);
    forget();
  };
  const dropPolicy = (tenant: string, id: string) => {
    policies.delete(`${tenant}\u0000${id}`);
    forget();
  };
  const putAttachment = (a: Attachment) => {
    const tk =
      a.targetType === 'platform'
        ? targetKey('platform', '', '')
        : targetKey(a.targetType, a.tenant, a.targetId);
    byTarget.set(tk, [...(byTarget.get(tk) ?? []), a]);
    const pk = `${a.tenant}\u0000${a.policyId}`;
    byPolicy.set(pk, [...(byPolicy.get(pk) ?? []), a]);
    forget();
  };
  const dropAttachment = (a: Attachment) => {
    const same = (x: Attachment) =>
      x.tenant === a.tenant &&
      x.policyId === a.policyId &&
      x.targetType === a.targetType &&
      x.targetId === a.targetId;
    for (const m of [byTarget, byPolicy])
      for (const [k, list] of m)
        if (list.some(same))
          m.set(
            k,
            list.filter((x) => !same(x)),
          );
    forget();
  };
  /** Tells other nodes to reload (a policy was created or deleted: nothing to recompile yet). */
  const reloadElsewhere = (tenant: string, reason: string) =>
    store.appendChange({
      tenant,
      scope: { kind: 'devices', ids: [] },
      reason,
      reload: true,
      placementChanged: false,
      origin: nodeId,
    });

  const emit = (change: PolicyChange) => {
    for (const l of listeners) {
      try {
        l(change);
      } catch (err) {
        deps.logger?.error({ err: String(err) }, 'policy change listener failed');
      }
    }
  };

  /** Records a change in the feed (other nodes replay it), then applies it here. */
  const publish = async (change: PolicyChange, reloadNeeded: boolean) => {
    // Live sessions here first; then the feed record that other nodes replay.
    emit(change);
    const record: PolicyChangeRecord = { ...change, reload: reloadNeeded, origin: nodeId };
    await store.appendChange(record);
  };

  const scopeOf = (a: Attachment): { tenant: string | null; scope: ChangeScope } => {
    switch (a.targetType) {
      case 'platform':
        return { tenant: null, scope: { kind: 'all' } };
      case 'tenant':
        return { tenant: a.tenant, scope: { kind: 'all' } };
      case 'fleet':
        return { tenant: a.tenant, scope: { kind: 'fleet', path: a.targetId } };
      case 'group':
        return { tenant: a.tenant, scope: { kind: 'group', name: a.targetId } };
      case 'device':
        return { tenant: a.tenant, scope: { kind: 'devices', ids: [a.targetId] } };
    }
  };

  const attachedDocs = (
    key: string,
    point: AttachmentPoint,
    out: Map<string, EffectiveDocument & { attachedAt: AttachmentPoint[] }>,
  ) => {
    for (const a of byTarget.get(key) ?? []) {
      const p = policies.get(`${a.tenant}\u0000${a.policyId}`);
      if (!p) continue;
      const k = `${p.tenant}\u0000${p.id}`;
      const have = out.get(k);
      if (have) have.attachedAt.push(point);
      else out.set(k, { document: p.document, version: p.version, attachedAt: [point] });
    }
  };

  const documentsFor = (principal: Principal): readonly EffectiveDocument[] => {
    if (principal.type !== 'device') return collect(principal);
    // A device with policies of its own is collected alone; the others share by placement.
    if (byTarget.has(targetKey('device', principal.tenant, principal.id))) return collect(principal);
    const key = `${principal.tenant}\u0000${principal.fleet ?? ''}\u0000${(principal.groups ?? []).join('\u0000')}`;
    let docs = placementCache.get(key);
    if (!docs) {
      docs = collect(principal);
      if (placementCache.size >= 10_000) placementCache.clear();
      placementCache.set(key, docs);
    }
    return docs;
  };

  const collect = (principal: Principal): readonly EffectiveDocument[] => {
    const out = new Map<string, EffectiveDocument & { attachedAt: AttachmentPoint[] }>();
    const builtin = (doc: PolicyDocument, at: AttachmentPoint) =>
      out.set(`\u0000${doc.id}`, { document: doc, version: 1, attachedAt: [at] });
    if (principal.type === 'device') builtin(deviceDefaultPolicy, { type: 'builtin', id: 'device' });
    else {
      const role = Object.hasOwn(rolePolicies, principal.role)
        ? rolePolicies[principal.role]
        : deps.roles?.document(principal.tenant, principal.role);
      if (role) builtin(role, { type: 'role', id: principal.role });
      builtin(selfServicePolicy, { type: 'builtin', id: 'self-service' });
    }
    // Platform and tenant attachments apply to every principal; the rest to devices only.
    attachedDocs(targetKey('platform', '', ''), { type: 'platform', id: '*' }, out);
    attachedDocs(
      targetKey('tenant', principal.tenant, principal.tenant),
      { type: 'tenant', id: principal.tenant },
      out,
    );
    if (principal.type === 'device') {
      for (const path of fleetAncestors(principal.fleet ?? ''))
        attachedDocs(targetKey('fleet', principal.tenant, path), { type: 'fleet', id: path }, out);
      for (const g of principal.groups ?? []) {
        if (g === QUARANTINE_GROUP) builtin(quarantinePolicy, { type: 'group', id: g });
        attachedDocs(targetKey('group', principal.tenant, g), { type: 'group', id: g }, out);
      }
      attachedDocs(
        targetKey('device', principal.tenant, principal.id),
        { type: 'device', id: principal.id },
        out,
      );
    }
    return [...out.values()];
  };

  const compileFor = (principal: Principal, options: { context?: AuthorizeContext } = {}): CompiledPolicy => {
    const opts = { now, ...(options.context ? { context: options.context } : {}) };
    if (principal.type === 'device' || options.context)
      return compile(principal, documentsFor(principal), opts);
    // Compiled role policies are shared per principal; any policy change clears the cache.
    const key = `${principal.type}\u0000${principal.id}\u0000${principal.tenant}\u0000${principal.role}\u0000${deps.roles?.revision() ?? 0}`;
    let c = roleCache.get(key);
    if (!c) {
      c = compile(principal, documentsFor(principal), opts);
      if (roleCache.size > 10_000) forget();
      roleCache.set(key, c);
    }
    return c;
  };

  const getStored = (tenant: string, id: string) => {
    const p = policies.get(`${tenant}\u0000${id}`);
    if (!p) throw new AppError('ERR_POLICY_NOT_FOUND', `Policy ${id} not found`);
    return p;
  };
  const builtinById = (id: string) => [...BUILTINS, ...Object.values(rolePolicies)].find((d) => d.id === id);
  const viewOf = (p: StoredPolicy): PolicyView => ({
    id: p.id,
    tenant: p.tenant,
    builtin: false,
    version: p.version,
    document: p.document,
    attachments: (byPolicy.get(`${p.tenant}\u0000${p.id}`) ?? []).map((a) => ({
      type: a.targetType,
      id: a.targetId,
    })),
    createdAt: p.createdAt,
    updatedAt: p.updatedAt,
    updatedBy: p.updatedBy,
  });
  const builtinView = (d: PolicyDocument): PolicyView => ({
    id: d.id,
    tenant: null,
    builtin: true,
    version: 1,
    document: d,
    attachments:
      d === deviceDefaultPolicy
        ? [{ type: 'builtin', id: 'device' }]
        : d === quarantinePolicy
          ? [{ type: 'group', id: QUARANTINE_GROUP }]
          : Object.entries(rolePolicies)
              .filter(([, r]) => r === d)
              .map(([role]) => ({ type: 'role' as const, id: role })),
    createdAt: null,
    updatedAt: null,
    updatedBy: null,
  });

  const checkBuiltin = (id: string) => {
    if (id.startsWith('builtin:'))
      throw new AppError('ERR_POLICY_BUILTIN', `${id} is built in and cannot be changed`);
  };

  const normaliseTarget = async (actor: PolicyActor, target: { type: AttachmentTargetType; id: string }) => {
    switch (target.type) {
      case 'platform':
        if (!deps.platformTenant || actor.tenant !== deps.platformTenant)
          throw new AppError(
            'ERR_POLICY_PLATFORM_ONLY',
            'Only the platform tenant attaches policies to the platform',
          );
        return { type: target.type, id: '*' };
      case 'tenant':
        if (target.id !== actor.tenant && target.id !== '')
          throw new AppError('ERR_POLICY_TARGET_NOT_FOUND', `Tenant ${target.id} is not yours`);
        return { type: target.type, id: actor.tenant };
      default:
        if (target.type === 'group' && target.id === QUARANTINE_GROUP) return target;
        if (!deps.directory || !(await deps.directory.targetExists(actor.tenant, target.type, target.id)))
          throw new AppError('ERR_POLICY_TARGET_NOT_FOUND', `No ${target.type} ${target.id}`);
        return target;
    }
  };

  const notifyAttachmentsOf = async (tenant: string, policyId: string, reason: string) => {
    const changes = (byPolicy.get(`${tenant}\u0000${policyId}`) ?? []).map((a): PolicyChange => ({
      ...scopeOf(a),
      reason,
      placementChanged: false,
    }));
    // Other nodes reload on the first record; a policy attached nowhere still needs the reload.
    const records =
      changes.length > 0
        ? changes
        : [{ tenant, scope: { kind: 'devices', ids: [] }, reason, placementChanged: false } as PolicyChange];
    for (const c of changes) emit(c);
    for (const c of records) await store.appendChange({ ...c, reload: true, origin: nodeId });
  };

  const affects = (change: PolicyChange, p: Principal): boolean => {
    if (change.tenant !== null && change.tenant !== p.tenant) return false;
    const s = change.scope;
    switch (s.kind) {
      case 'all':
        return true;
      case 'fleet': {
        if (p.type !== 'device') return false;
        const f = p.fleet ?? '';
        return f === s.path || f.startsWith(`${s.path}/`);
      }
      case 'group':
        return p.type === 'device' && (p.groups ?? []).includes(s.name);
      case 'devices':
        return p.type === 'device' && s.ids.includes(p.id);
    }
  };

  const principalOf = async (tenant: string, who: ExplainRequest['principal']): Promise<Principal> => {
    if (who.type === 'device') {
      const d = await deps.directory?.device(tenant, who.id);
      if (!d) throw new AppError('ERR_DEVICE_NOT_FOUND', `Device ${who.id} not found`);
      return {
        type: 'device',
        id: d.id,
        tenant,
        fleet: d.fleet,
        groups: d.groups,
        attributes: d.attributes,
        ...(d.capabilities ? { capabilities: d.capabilities } : {}),
      };
    }
    const a = await deps.directory?.account(tenant, who.id);
    if (!a || a.kind !== who.type)
      throw new AppError('ERR_POLICY_PRINCIPAL_NOT_FOUND', `No ${who.type} ${who.id} in this tenant`);
    return {
      type: a.kind,
      id: who.id,
      tenant,
      role: a.role,
      ...(a.boundaries && a.boundaries.length > 0 ? { boundaries: a.boundaries } : {}),
    };
  };

  /** Shorthand `topic/a/b` is `bulwark:<tenant>:topic/a/b`; a full name must be in the caller's tenant. */
  const fullResource = (tenant: string, r: string) => {
    const full = r.startsWith('bulwark:') ? r : `bulwark:${tenant}:${r}`;
    if (!full.startsWith(`bulwark:${tenant}:`))
      throw new AppError('ERR_POLICY_BAD_RESOURCE', 'The resource must be in your tenant');
    return full;
  };

  /** Requests that exercise a statement for one principal: its actions on concrete forms of its resources. */
  const probesOf = (docs: readonly PolicyDocument[], principal: Principal): PermissionChange[] => {
    const vars = variablesOf(principal);
    const out = new Map<string, PermissionChange>();
    for (const d of docs)
      for (const st of d.statements) {
        const acts = ACTIONS.filter((a) =>
          st.actions.some((p) => p === '*' || p === a || (p.endsWith(':*') && a.startsWith(p.slice(0, -1)))),
        );
        for (const raw of [...(st.resources ?? []), ...(st.notResources ?? [])]) {
          const r = substitute(raw, vars);
          if (r === undefined) continue;
          const t = parseTopicResource(r);
          for (const action of acts) {
            const forms = [t ? (action === 'mqtt:subscribe' ? r : concreteTopic(r)) : r.replace(/\*/g, '_')];
            for (const resource of forms) out.set(`${action} ${resource}`, { action, resource });
          }
        }
      }
    return [...out.values()];
  };

  return {
    documentsFor,
    compileFor,
    authorize(principal, action, resource, context) {
      const decision = compileFor(principal).decide(action, resource, context);
      return boundaries.check(principal, action, resource, context, decision);
    },
    covers(grantor, requested) {
      const docs = (p: Principal) => documentsFor(p).map((d) => d.document);
      return coversPermissions(
        { principal: grantor, documents: docs(grantor) },
        { principal: requested, documents: docs(requested) },
      );
    },
    async load() {
      await reload();
      lastSeq = await store.lastChangeSeq();
    },
    list(tenant) {
      const own = [...policies.values()].filter((p) => p.tenant === tenant).map(viewOf);
      return [
        ...BUILTINS.map(builtinView),
        ...Object.values(rolePolicies).map(builtinView),
        ...own.sort((a, b) => a.id.localeCompare(b.id)),
      ];
    },
    get(tenant, id) {
      const b = builtinById(id);
      return b ? builtinView(b) : viewOf(getStored(tenant, id));
    },
    async create(actor, input) {
      const doc = validatePolicyDocument(input, actor.tenant);
      checkBuiltin(doc.id);
      const t = now();
      const p: StoredPolicy = {
        tenant: actor.tenant,
        id: doc.id,
        version: 1,
        document: doc,
        createdAt: t,
        updatedAt: t,
        updatedBy: actor.id,
      };
      const version = await store.insert(p);
      putPolicy({ ...p, version });
      await reloadElsewhere(actor.tenant, 'policy.create');
      return viewOf({ ...p, version });
    },
    async update(actor, id, input, expectedVersion) {
      checkBuiltin(id);
      const current = getStored(actor.tenant, id);
      const doc = validatePolicyDocument({ ...(input as object), id }, actor.tenant);
      if (expectedVersion !== undefined && expectedVersion !== current.version)
        throw new AppError(
          'ERR_POLICY_VERSION_CONFLICT',
          `Policy ${id} is at version ${current.version}, not ${expectedVersion}`,
        );
      const next: StoredPolicy = {
        ...current,
        version: current.version + 1,
        document: doc,
        updatedAt: now(),
        updatedBy: actor.id,
      };
      if (!(await store.update(next, current.version)))
        throw new AppError(
          'ERR_POLICY_VERSION_CONFLICT',
          `Policy ${id} was changed concurrently; reload and retry`,
        );
      // The index first, so every listener recompiles against the new version.
      putPolicy(next);
      await notifyAttachmentsOf(actor.tenant, id, 'policy.update');
      return viewOf(getStored(actor.tenant, id));
    },
    async remove(actor, id) {
      checkBuiltin(id);
      const current = getStored(actor.tenant, id);
      const atts = byPolicy.get(`${actor.tenant}\u0000${id}`) ?? [];
      if (atts.length > 0)
        throw new AppError(
          'ERR_POLICY_ATTACHED',
          `Policy ${id} is attached at ${atts.length} point(s); detach it first`,
          {
            errors: atts.map((a) => ({ path: 'attachments', message: `${a.targetType}:${a.targetId}` })),
          },
        );
      if (!(await store.delete(actor.tenant, id, actor.id, now(), current.version + 1)))
        throw new AppError('ERR_POLICY_NOT_FOUND', `Policy ${id} not found`);
      dropPolicy(actor.tenant, id);
      await reloadElsewhere(actor.tenant, 'policy.delete');
    },
    versions: async (tenant, id) => {
      const v = await store.versions(tenant, id);
      if (v.length === 0) throw new AppError('ERR_POLICY_NOT_FOUND', `Policy ${id} not found`);
      return v;
    },
    async attach(actor, policyId, rawTarget) {
      checkBuiltin(policyId);
      getStored(actor.tenant, policyId);
      const target = await normaliseTarget(actor, rawTarget);
      const a: Attachment = {
        tenant: actor.tenant,
        policyId,
        targetType: target.type,
        targetId: target.id,
        createdAt: now(),
      };
      if (!(await store.attach(a)))
        throw new AppError(
          'ERR_POLICY_ALREADY_ATTACHED',
          `Policy ${policyId} is already attached to ${target.type} ${target.id}`,
        );
      putAttachment(a);
      await publish({ ...scopeOf(a), reason: 'policy.attach', placementChanged: false }, true);
      return a;
    },
    async detach(actor, policyId, rawTarget) {
      const target =
        rawTarget.type === 'platform'
          ? { ...rawTarget, id: '*' }
          : rawTarget.type === 'tenant'
            ? { ...rawTarget, id: actor.tenant }
            : rawTarget;
      if (!(await store.detach(actor.tenant, policyId, target.type, target.id)))
        throw new AppError(
          'ERR_POLICY_NOT_ATTACHED',
          `Policy ${policyId} is not attached to ${target.type} ${target.id}`,
        );
      const a: Attachment = {
        tenant: actor.tenant,
        policyId,
        targetType: target.type,
        targetId: target.id,
        createdAt: 0,
      };
      dropAttachment(a);
      await publish({ ...scopeOf(a), reason: 'policy.detach', placementChanged: false }, true);
    },
    attachments(tenant, target) {
      const all = [...byPolicy.values()].flat().filter((a) => a.tenant === tenant);
      return target
        ? all.filter(
            (a) => a.targetType === target.type && (target.type === 'platform' || a.targetId === target.id),
          )
        : all;
    },
    async explain(tenant, req) {
      const principal = await principalOf(tenant, req.principal);
      const resource = fullResource(tenant, req.resource);
      const compiled = compile(principal, documentsFor(principal), { now });
      // A fleet boundary needs to know where a device sits, as the HTTP transport finds it out.
      let context = req.context;
      const device = /^bulwark:[^:]+:device\/([^/]+)/.exec(resource);
      const fenced = principal.type !== 'device' && principal.boundaries?.some((b) => b.fleet !== undefined);
      if (context?.resourceFleet === undefined && device?.[1] && fenced) {
        const placed = await deps.directory?.device(tenant, device[1]);
        if (placed) context = { ...context, resourceFleet: placed.fleet };
      }
      const d = compiled.decide(req.action, resource, context);
      const verdicts = boundaries.verdicts(principal, req.action, resource, context);
      const narrowed = d.allowed && verdicts.some((v) => !v.allowed);
      const docOf = new Map(compiled.documents.map((e) => [e.document.id, e]));
      return {
        principal,
        action: req.action,
        resource,
        allowed: d.allowed && !narrowed,
        outcome: narrowed
          ? 'boundary-deny'
          : d.allowed
            ? 'allow'
            : d.matched.length > 0
              ? 'deny'
              : 'implicit-deny',
        matched: d.matched.map((m) => ({
          policy: m.policy,
          version: docOf.get(m.policy)?.version ?? 0,
          sid: m.sid,
          statement: m.statement,
          effect: m.effect,
          attachedAt: docOf.get(m.policy)?.attachedAt ?? [],
        })),
        evaluated: compiled.documents.map((e) => ({
          policy: e.document.id,
          version: e.version,
          attachedAt: e.attachedAt,
        })),
        boundaries: verdicts,
      };
    },
    async diff(tenant, proposal, options = {}) {
      const maxDevices = Math.min(Math.max(options.maxDevices ?? 10_000, 1), 100_000);
      const current = getStored(tenant, proposal.policyId);
      let proposed: PolicyDocument | undefined = current.document;
      let targets: { type: AttachmentTargetType; id: string }[] = (
        byPolicy.get(`${tenant}\u0000${current.id}`) ?? []
      ).map((a) => ({ type: a.targetType, id: a.targetId }));
      let addTarget: { type: AttachmentTargetType; id: string } | undefined;
      let dropTarget: { type: AttachmentTargetType; id: string } | undefined;
      if ('document' in proposal)
        proposed = validatePolicyDocument({ ...(proposal.document as object), id: current.id }, tenant);
      else if ('delete' in proposal) proposed = undefined;
      else if ('attach' in proposal)
        targets = [
          (addTarget = proposal.attach.type === 'tenant' ? { type: 'tenant', id: tenant } : proposal.attach),
        ];
      else dropTarget = proposal.detach.type === 'tenant' ? { type: 'tenant', id: tenant } : proposal.detach;
      if (dropTarget) targets = targets.filter((t) => t.type === dropTarget?.type && t.id === dropTarget.id);
      const findings = proposed ? lintPolicy(proposed) : [];
      /** What one principal gains and loses: the policy's own statements probed before and after. */
      const changesFor = (principal: Principal) => {
        const before = documentsFor(principal);
        const others = before.filter((e) => e.document.id !== current.id);
        const attachedBefore = before.length !== others.length;
        const attachedAfter = dropTarget
          ? (before.find((e) => e.document.id === current.id)?.attachedAt.length ?? 0) > 1
          : attachedBefore || addTarget !== undefined;
        const after =
          proposed && attachedAfter
            ? [...others, { document: proposed, version: current.version + 1, attachedAt: [] }]
            : others;
        const oldC = compile(principal, before, { now });
        const newC = compile(principal, after, { now });
        // People and programs: a permission a boundary withholds is neither gained nor lost.
        const held = (c: CompiledPolicy, probe: PermissionChange) =>
          principal.type === 'device'
            ? c.allows(probe.action, probe.resource)
            : boundaries.check(
                principal,
                probe.action,
                probe.resource,
                undefined,
                c.decide(probe.action, probe.resource),
              ).allowed;
        const gained: PermissionChange[] = [];
        const lost: PermissionChange[] = [];
        for (const probe of probesOf([current.document, ...(proposed ? [proposed] : [])], principal)) {
          const was = held(oldC, probe);
          const is = held(newC, probe);
          if (was !== is) (is ? gained : lost).push(probe);
        }
        return { gained, lost };
      };
      const devices: { id: string; gained: PermissionChange[]; lost: PermissionChange[] }[] = [];
      let evaluated = 0;
      let truncated = false;
      const seen = new Set<string>();
      const dir = deps.directory;
      for (const target of targets) {
        if (!dir || target.type === 'platform') continue;
        let after: string | undefined;
        for (;;) {
          const page = await dir.devicesIn(
            tenant,
            { type: target.type, id: target.id },
            { limit: 500, ...(after ? { after } : {}) },
          );
          for (const d of page) {
            if (seen.has(d.id)) continue;
            if (evaluated >= maxDevices) {
              truncated = true;
              break;
            }
            seen.add(d.id);
            evaluated++;
            const principal: Principal = {
              type: 'device',
              id: d.id,
              tenant,
              fleet: d.fleet,
              groups: d.groups,
              attributes: d.attributes,
              ...(d.capabilities ? { capabilities: d.capabilities } : {}),
            };
            const { gained, lost } = changesFor(principal);
            if (gained.length > 0 || lost.length > 0) devices.push({ id: d.id, gained, lost });
          }
          const last = page[page.length - 1];
          if (truncated || page.length < 500 || !last) break;
          after = last.id;
        }
        if (truncated) break;
      }
      // People and programs: only tenant and platform attachments reach them.
      const accounts: {
        type: 'user' | 'service';
        id: string;
        gained: PermissionChange[];
        lost: PermissionChange[];
      }[] = [];
      const wide = targets.some((t) => t.type === 'tenant' || t.type === 'platform');
      for (const a of wide && dir?.accounts ? await dir.accounts(tenant) : []) {
        const principal: Principal = {
          type: a.kind,
          id: a.id,
          tenant,
          role: a.role,
          ...(a.boundaries && a.boundaries.length > 0 ? { boundaries: a.boundaries } : {}),
        };
        const { gained, lost } = changesFor(principal);
        if (gained.length > 0 || lost.length > 0) accounts.push({ type: a.kind, id: a.id, gained, lost });
      }
      return { devices, accounts, evaluated, truncated, lint: findings };
    },
    lint(tenant, input) {
      return lintPolicy(validatePolicyDocument(input, tenant));
    },
    async notify(change) {
      await publish(change, false);
    },
    onChange(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    affects,
    async sync() {
      let applied = 0;
      for (;;) {
        const batch = await store.changesSince(lastSeq, 500);
        if (batch.length === 0) return applied;
        if (batch.some((c) => c.origin !== nodeId && c.reload)) await reload();
        for (const c of batch) {
          lastSeq = Math.max(lastSeq, c.seq);
          if (c.origin === nodeId) continue;
          // A reload-only record (policy created or deleted) concerns no session.
          if (c.scope.kind === 'devices' && c.scope.ids.length === 0) continue;
          applied++;
          emit({ tenant: c.tenant, scope: c.scope, reason: c.reason, placementChanged: c.placementChanged });
        }
      }
    },
  };
}
