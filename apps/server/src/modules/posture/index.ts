export {
  createPostureService,
  findingView,
  type FindingView,
  type PostureDeps,
  type PostureService,
} from './service.ts';
export {
  capabilityObservations,
  parseTamperReport,
  policyObservations,
  tamperObservation,
  TAMPER_MAX_BYTES,
  type LintLike,
} from './checks.ts';
export { createPostureStore } from './store.ts';
export { postureRoutes, type PostureRouteDeps } from './http.ts';
export { tamperMessageHandler, type TamperMessageHandler } from './mqtt.ts';
export {
  FINDING_KINDS,
  SEVERITIES,
  type Finding,
  type FindingKind,
  type FindingQuery,
  type FindingStatus,
  type Observation,
  type PostureStore,
  type Severity,
} from './model.ts';
