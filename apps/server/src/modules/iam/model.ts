export type AccountKind = 'user' | 'service';
export type AccountStatus = 'active' | 'disabled';

export interface Account {
  readonly id: string;
  readonly tenant: string;
  readonly name: string;
  readonly kind: AccountKind;
  readonly role: string;
  /** The role applies to this fleet subtree only; null: the whole tenant. */
  readonly roleFleet: string | null;
  readonly status: AccountStatus;
  readonly description: string | null;
  readonly createdAt: number;
  readonly createdBy: string | null;
  /** Signed in through this identity provider (JIT-created); null for local accounts. */
  readonly idpIssuer: string | null;
  readonly idpSubject: string | null;
}

/** Secrets of a local account; never leave the iam module. */
export interface Credentials {
  readonly accountId: string;
  readonly passwordHash: string | null;
  readonly passwordChangedAt: number | null;
  readonly failedLogins: number;
  readonly lockedUntil: number | null;
  /** Sealed TOTP secret once MFA is enabled; `totpPending` while enrollment awaits its first code. */
  readonly totpSecret: string | null;
  readonly totpPending: string | null;
  /** Last TOTP time step accepted: a code is good once (RFC 6238 §5.2). */
  readonly totpLastStep: number | null;
}

export interface TokenScope {
  /** Action patterns; absent: every action the owner holds. */
  readonly actions?: readonly string[];
  /** Fleet subtree. */
  readonly fleet?: string;
}

export interface TokenRecord {
  readonly id: string;
  readonly tenant: string;
  readonly accountId: string;
  readonly name: string;
  readonly hash: string;
  readonly createdAt: number;
  readonly expiresAt: number | null;
  readonly lastUsedAt: number | null;
  readonly revokedAt: number | null;
  readonly scope: TokenScope | null;
  readonly createdBy: string | null;
  /** Minted by an SSO sign-in whose identity provider asserted a second factor (CLI sign-in). */
  readonly mfa?: boolean;
}

export interface CustomRole {
  readonly tenant: string;
  readonly name: string;
  readonly description: string | null;
  /** Policy statements (the policy module's grammar). */
  readonly statements: readonly unknown[];
  readonly createdAt: number;
  readonly createdBy: string;
  /** 1 when created; +1 with every change (numbering continues across a deletion). */
  readonly version: number;
  readonly updatedAt: number | null;
  readonly updatedBy: string | null;
}

/** One version of a custom role as it was written (or its deletion). */
export interface RoleVersion {
  readonly tenant: string;
  readonly name: string;
  readonly version: number;
  readonly deleted: boolean;
  readonly description: string | null;
  readonly statements: readonly unknown[];
  readonly createdAt: number;
  readonly createdBy: string;
}

export interface SessionRecord {
  /** SHA-256 of the cookie value. */
  readonly id: string;
  readonly tenant: string;
  readonly accountId: string;
  readonly authMethod: 'session' | 'oidc';
  readonly mfa: boolean;
  readonly createdAt: number;
  readonly lastSeenAt: number;
  /** Absolute end of the session. */
  readonly expiresAt: number;
  readonly revokedAt: number | null;
  readonly source: string | null;
  readonly userAgent: string | null;
}

export interface PasswordToken {
  readonly hash: string;
  readonly tenant: string;
  readonly accountId: string;
  readonly purpose: 'setup' | 'reset';
  readonly createdAt: number;
  readonly expiresAt: number;
  readonly usedAt: number | null;
}

export interface SecuritySettings {
  readonly tenant: string;
  /** Every person must sign in with a second factor. */
  readonly mfaRequired: boolean;
  /** People holding these roles must sign in with a second factor. */
  readonly mfaRequiredRoles: readonly string[];
}

export interface RoleMapping {
  /** Value of the groups claim. */
  readonly group: string;
  readonly role: string;
  readonly fleet?: string;
}

export interface IdpConfig {
  readonly tenant: string;
  readonly issuer: string;
  readonly clientId: string;
  /** Sealed; never returned by the API. */
  readonly clientSecretSealed: string | null;
  readonly scopes: readonly string[];
  readonly groupsClaim: string;
  readonly roleMappings: readonly RoleMapping[];
  /** Role for identities whose groups map to nothing; null: refuse them. */
  readonly defaultRole: string | null;
  readonly enabled: boolean;
  readonly updatedAt: number;
  readonly updatedBy: string;
}

export interface OidcPending {
  readonly stateHash: string;
  readonly tenant: string;
  readonly bindingHash: string;
  readonly codeVerifier: string;
  readonly nonce: string;
  readonly createdAt: number;
  readonly expiresAt: number;
  /** Handle hash of the CLI sign-in this browser flow serves; absent for a console sign-in. */
  readonly cliRequest?: string | null;
}

/** A sign-in for the CLI (`bulwark login --sso`): RFC 8252 loopback redirect, PKCE by the CLI. */
export interface CliSsoRequest {
  /** SHA-256 of the browser link's handle. */
  readonly handleHash: string;
  readonly tenant: string;
  /** Where the browser goes with the one-time code: the CLI's loopback listener. */
  readonly redirectUri: string;
  /** S256 challenge of the CLI's own verifier: only the CLI that started it can finish it. */
  readonly codeChallenge: string;
  /** The CLI's `state`, given back on the redirect (the CLI checks it). */
  readonly cliState: string;
  readonly createdAt: number;
  readonly expiresAt: number;
  /** The browser link was opened (once). */
  readonly startedAt: number | null;
  readonly codeHash: string | null;
  readonly accountId: string | null;
  readonly mfa: boolean;
  readonly codeExpiresAt: number | null;
  readonly usedAt: number | null;
}

export interface IamStore {
  insertAccount(a: Account): Promise<void>;
  getAccount(id: string): Promise<Account | undefined>;
  findAccountByName(tenant: string, name: string): Promise<Account | undefined>;
  findAccountByIdp(tenant: string, issuer: string, subject: string): Promise<Account | undefined>;
  listAccounts(tenant: string, kind: AccountKind): Promise<Account[]>;
  updateAccount(
    id: string,
    patch: Partial<Pick<Account, 'role' | 'roleFleet' | 'status' | 'name'>>,
  ): Promise<void>;
  deleteAccount(id: string): Promise<void>;
  countAccounts(tenant: string): Promise<number>;
  countActiveWithRole(tenant: string, role: string): Promise<number>;
  countWithRole(tenant: string, role: string): Promise<number>;

  getCredentials(accountId: string): Promise<Credentials | undefined>;
  updateCredentials(accountId: string, patch: Partial<Omit<Credentials, 'accountId'>>): Promise<void>;
  replaceRecoveryCodes(accountId: string, hashes: readonly string[]): Promise<void>;
  /** Marks an unused recovery code used; false when there is none. */
  useRecoveryCode(accountId: string, hash: string, now: number): Promise<boolean>;

  insertToken(t: TokenRecord): Promise<void>;
  findTokenByHash(hash: string): Promise<TokenRecord | undefined>;
  getToken(id: string): Promise<TokenRecord | undefined>;
  listTokens(accountId: string): Promise<TokenRecord[]>;
  revokeToken(id: string, now: number): Promise<void>;
  revokeTokensOf(accountId: string, now: number): Promise<number>;
  touchToken(id: string, now: number): Promise<void>;

  /** Inserts the role and its first version (numbered after any earlier role of the same name). */
  insertRole(r: Omit<CustomRole, 'version' | 'updatedAt' | 'updatedBy'>): Promise<CustomRole>;
  listRoles(tenant?: string): Promise<CustomRole[]>;
  /**
   * Replaces the role's description and statements if it is still at `fromVersion`, and records the
   * new version; undefined when the role is gone or was changed meanwhile.
   */
  updateRole(
    tenant: string,
    name: string,
    fromVersion: number,
    patch: { description: string | null; statements: readonly unknown[]; at: number; by: string },
  ): Promise<CustomRole | undefined>;
  /** Deletes the role and records the deletion as its last version. */
  deleteRole(tenant: string, name: string, at: number, by: string): Promise<boolean>;
  listRoleVersions(tenant: string, name: string): Promise<RoleVersion[]>;

  insertSession(s: SessionRecord): Promise<void>;
  getSession(id: string): Promise<SessionRecord | undefined>;
  touchSession(id: string, now: number): Promise<void>;
  revokeSession(id: string, now: number): Promise<void>;
  revokeSessionsOf(accountId: string, now: number, exceptId?: string): Promise<number>;
  listSessions(accountId: string, now: number): Promise<SessionRecord[]>;

  insertPasswordToken(t: PasswordToken): Promise<void>;
  peekPasswordToken(hash: string): Promise<PasswordToken | undefined>;
  /** Marks the token used, once; returns it when it was unused. */
  usePasswordToken(hash: string, now: number): Promise<PasswordToken | undefined>;

  getSettings(tenant: string): Promise<SecuritySettings | undefined>;
  putSettings(s: SecuritySettings, now: number): Promise<void>;

  getIdp(tenant: string): Promise<IdpConfig | undefined>;
  putIdp(c: IdpConfig): Promise<void>;
  deleteIdp(tenant: string): Promise<boolean>;
  insertOidcPending(p: OidcPending): Promise<void>;
  /** Deletes and returns the pending sign-in: a state is usable once. */
  takeOidcPending(stateHash: string): Promise<OidcPending | undefined>;

  /** Stores a new CLI sign-in; deletes those that ended more than a day before `now`. */
  insertCliRequest(r: CliSsoRequest, now: number): Promise<void>;
  /** Marks the browser link opened, once, while it is valid; returns it then. */
  startCliRequest(handleHash: string, now: number): Promise<CliSsoRequest | undefined>;
  getCliRequest(handleHash: string): Promise<CliSsoRequest | undefined>;
  /** Records the one-time code of a started sign-in (once). */
  setCliCode(
    handleHash: string,
    code: { codeHash: string; accountId: string; mfa: boolean; codeExpiresAt: number },
  ): Promise<boolean>;
  /** Marks the code used, once; returns the sign-in when it was unused. */
  useCliCode(codeHash: string, now: number): Promise<CliSsoRequest | undefined>;
  findCliCode(codeHash: string): Promise<CliSsoRequest | undefined>;

  ensureTenant(id: string, name: string, now: number): Promise<boolean>;
}

/** At-rest encryption of secrets the platform must read back (TOTP secrets, IdP client secrets). */
export interface Sealer {
  seal(plain: Uint8Array): Promise<string>;
  open(sealed: string): Promise<Uint8Array>;
}

/** What the iam service needs from an OpenID Connect relying-party library (oidc.ts implements it). */
export interface OidcRelyingParty {
  /** Authorization URL for a new sign-in (authorization code flow, PKCE S256, state and nonce). */
  authorizationUrl(
    idp: IdpConfig,
    clientSecret: string | null,
    params: { redirectUri: string; state: string; nonce: string; codeChallenge: string },
  ): Promise<string>;
  /** Validates the callback and the ID token; returns its claims, or throws. */
  callback(
    idp: IdpConfig,
    clientSecret: string | null,
    params: { currentUrl: string; redirectUri: string; state: string; nonce: string; codeVerifier: string },
  ): Promise<Record<string, unknown>>;
}
