export {
  createIamService,
  DEFAULT_IAM_OPTIONS,
  hashToken,
  TOKEN_PREFIX,
  type AccountView,
  type Actor,
  type AuthPrincipal,
  type IamOptions,
  type IamService,
  type RoleView,
  type TokenView,
} from './service.ts';
export { csrfFor, MFA_ENROLLMENT_BOUNDARY } from './signin.ts';
export { createIamStore } from './store.ts';
export { createOidcRelyingParty } from './oidc.ts';
export { hashPassword, verifyPassword, checkPasswordPolicy } from './password.ts';
export { totp, verifyTotp, base32Decode, base32Encode } from './totp.ts';
export type {
  Account,
  AccountKind,
  IamStore,
  OidcRelyingParty,
  Sealer,
  TokenRecord,
  TokenScope,
} from './model.ts';
export { iamRoutes, iamPublicRoutes, type IamRouteDeps } from './http.ts';
