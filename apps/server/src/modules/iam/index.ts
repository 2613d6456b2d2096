export { createIamService, hashToken, TOKEN_PREFIX, type IamService } from './service.ts';
export { createIamStore } from './store.ts';
export type { Account, AccountKind, IamStore, TokenRecord } from './model.ts';
export { iamRoutes } from './http.ts';
