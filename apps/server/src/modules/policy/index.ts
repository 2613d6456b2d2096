export {
  createPolicyService,
  fleetAncestors,
  type AccountPlacement,
  type DevicePlacement,
  type DiffProposal,
  type DiffResult,
  type Explanation,
  type ExplainRequest,
  type PolicyActor,
  type PolicyDirectory,
  type PolicyService,
  type PolicyServiceDeps,
  type PolicyView,
} from './service.ts';
export {
  compile,
  filterCovers,
  filterOverlaps,
  parseTopicResource,
  substitute,
  topicMatches,
  TopicTrie,
  variablesOf,
  type CompiledPolicy,
  type CompileOptions,
} from './engine.ts';
export {
  deviceDefaultPolicy,
  QUARANTINE_GROUP,
  quarantinePolicy,
  rolePolicies,
  selfServicePolicy,
} from './builtin.ts';
export { boundaryDocument, fleetWithin, FLEET_PATH } from './boundary.ts';
export { coversPermissions, globCovers, type Coverage, type CoverageGap } from './covers.ts';
export { lintPolicy, LINT_RULES, type LintFinding, type LintSeverity } from './lint.ts';
export { checkTopicFilter, validatePolicyDocument, POLICY_ID, VARIABLES } from './validate.ts';
export { parseCidr, parseIp, cidrContains } from './ip.ts';
export { createPolicyStore } from './store.ts';
export { createMemoryPolicyStore } from './memory-store.ts';
export { policyRoutes, type PolicyRouteDeps } from './http.ts';
export {
  ACTIONS,
  ATTACHMENT_TARGET_TYPES,
  resourceName,
  type Action,
  type Attachment,
  type AttachmentPoint,
  type AttachmentTargetType,
  type AuthorizeContext,
  type Boundary,
  type ChangeScope,
  type Conditions,
  type Decision,
  type EffectiveDocument,
  type MatchedStatement,
  type PolicyChange,
  type PolicyDocument,
  type PolicyStore,
  type PolicyVersion,
  type Principal,
  type Statement,
  type StoredPolicy,
} from './model.ts';
