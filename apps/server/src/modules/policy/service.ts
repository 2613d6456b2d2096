import { compile, type CompiledPolicy } from './engine.ts';
import { deviceDefaultPolicy, rolePolicies } from './builtin.ts';
import type { AuthorizeContext, Decision, PolicyDocument, Principal } from './model.ts';

export interface PolicyService {
  /** The single decision point for devices, people and programs. */
  authorize(principal: Principal, action: string, resource: string, context?: AuthorizeContext): Decision;
  /** The principal's effective policy, compiled once (per MQTT session, per token) for the hot path. */
  compileFor(principal: Principal): CompiledPolicy;
  documentsFor(principal: Principal): readonly PolicyDocument[];
}

export function createPolicyService(): PolicyService {
  const documentsFor = (principal: Principal): readonly PolicyDocument[] => {
    if (principal.type === 'device') return [deviceDefaultPolicy];
    const role = rolePolicies[principal.role];
    return role ? [role] : [];
  };
  // Compiled role policies are shared: a role's documents do not depend on who holds it, only variables do.
  const cache = new Map<string, CompiledPolicy>();
  const compileFor = (principal: Principal): CompiledPolicy => {
    if (principal.type === 'device') return compile(principal, documentsFor(principal));
    const key = `${principal.type}\u0000${principal.id}\u0000${principal.tenant}\u0000${principal.role}`;
    let c = cache.get(key);
    if (!c) {
      c = compile(principal, documentsFor(principal));
      if (cache.size > 10_000) cache.clear();
      cache.set(key, c);
    }
    return c;
  };
  return {
    documentsFor,
    compileFor,
    authorize(principal, action, resource, context) {
      return compileFor(principal).decide(action, resource, context);
    },
  };
}
