export { createAuditService, type AuditService } from './service.ts';
export { createAuditStore } from './store.ts';
export type { AuditEntry, AuditRecord, AuditStore, Outcome } from './model.ts';
export { auditRoutes } from './http.ts';
export { recordRouteAction } from './route.ts';
