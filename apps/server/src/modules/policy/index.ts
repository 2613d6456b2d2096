export { createPolicyService, type PolicyService } from './service.ts';
export { compile, topicMatches, filterCovers, type CompiledPolicy } from './engine.ts';
export { deviceDefaultPolicy, rolePolicies } from './builtin.ts';
export {
  ACTIONS,
  resourceName,
  type Action,
  type AuthorizeContext,
  type Decision,
  type PolicyDocument,
  type Principal,
  type Statement,
} from './model.ts';
