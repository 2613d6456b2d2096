// Public face of the EST module: enrollment over RFC 7030 (codes, manufacturer certificates, approvals,
// renewal with a grace period). The wire format lives in transport/http/est.ts.
export {
  createEstService,
  hashCode,
  type CreateCodeInput,
  type EnrollResult,
  type EstAuth,
  type EstService,
  type EstServiceOptions,
} from './service.ts';
export { createEstStore } from './store.ts';
export { estRoutes, type EstRouteDeps } from './http.ts';
export type { EnrollmentCode, EstRequest, EstRequestStatus, EstStore, FleetSettings } from './model.ts';
