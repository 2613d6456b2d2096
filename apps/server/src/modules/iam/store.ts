import type { Db, SqlValue } from '../../kernel/index.ts';
import type {
  Account,
  CliSsoRequest,
  Credentials,
  CustomRole,
  IamStore,
  IdpConfig,
  OidcPending,
  PasswordToken,
  RoleVersion,
  SessionRecord,
  TokenRecord,
} from './model.ts';

type Row = Record<string, unknown>;
const num = (v: unknown) => (v === null || v === undefined ? null : Number(v));
const str = (v: unknown) => (v === null || v === undefined ? null : String(v));

const account = (r: Row): Account => ({
  id: String(r.id),
  tenant: String(r.tenant_id),
  name: String(r.name),
  kind: r.kind as Account['kind'],
  role: String(r.role),
  roleFleet: str(r.role_fleet),
  status: (r.status as Account['status']) ?? 'active',
  description: str(r.description),
  createdAt: Number(r.created_at),
  createdBy: str(r.created_by),
  idpIssuer: str(r.idp_issuer),
  idpSubject: str(r.idp_subject),
});

const token = (r: Row): TokenRecord => ({
  id: String(r.id),
  tenant: String(r.tenant_id),
  accountId: String(r.account_id),
  name: String(r.name),
  hash: String(r.hash),
  createdAt: Number(r.created_at),
  expiresAt: num(r.expires_at),
  lastUsedAt: num(r.last_used_at),
  revokedAt: num(r.revoked_at),
  scope: r.scope ? (JSON.parse(String(r.scope)) as TokenRecord['scope']) : null,
  createdBy: str(r.created_by),
  mfa: Number(r.mfa ?? 0) === 1,
});

const cliRequest = (r: Row): CliSsoRequest => ({
  handleHash: String(r.handle_hash),
  tenant: String(r.tenant_id),
  redirectUri: String(r.redirect_uri),
  codeChallenge: String(r.code_challenge),
  cliState: String(r.cli_state),
  createdAt: Number(r.created_at),
  expiresAt: Number(r.expires_at),
  startedAt: num(r.started_at),
  codeHash: str(r.code_hash),
  accountId: str(r.account_id),
  mfa: Number(r.mfa) === 1,
  codeExpiresAt: num(r.code_expires_at),
  usedAt: num(r.used_at),
});

const session = (r: Row): SessionRecord => ({
  id: String(r.id),
  tenant: String(r.tenant_id),
  accountId: String(r.account_id),
  authMethod: r.auth_method as SessionRecord['authMethod'],
  mfa: Number(r.mfa) === 1,
  createdAt: Number(r.created_at),
  lastSeenAt: Number(r.last_seen_at),
  expiresAt: Number(r.expires_at),
  revokedAt: num(r.revoked_at),
  source: str(r.source),
  userAgent: str(r.user_agent),
});

const role = (r: Row): CustomRole => ({
  tenant: String(r.tenant_id),
  name: String(r.name),
  description: str(r.description),
  statements: JSON.parse(String(r.statements)) as unknown[],
  createdAt: Number(r.created_at),
  createdBy: String(r.created_by),
  version: Number(r.version ?? 1),
  updatedAt: num(r.updated_at),
  updatedBy: str(r.updated_by),
});

const roleVersion = (r: Row): RoleVersion => ({
  tenant: String(r.tenant_id),
  name: String(r.name),
  version: Number(r.version),
  deleted: Number(r.deleted) === 1,
  description: str(r.description),
  statements: JSON.parse(String(r.statements)) as unknown[],
  createdAt: Number(r.created_at),
  createdBy: String(r.created_by),
});

const ACCOUNT_COLUMNS: Record<string, string> = {
  role: 'role',
  roleFleet: 'role_fleet',
  status: 'status',
  name: 'name',
};
const CREDENTIAL_COLUMNS: Record<string, string> = {
  passwordHash: 'password_hash',
  passwordChangedAt: 'password_changed_at',
  failedLogins: 'failed_logins',
  lockedUntil: 'locked_until',
  totpSecret: 'totp_secret',
  totpPending: 'totp_pending',
  totpLastStep: 'totp_last_step',
};

function setClause(patch: object, columns: Record<string, string>): { sql: string; values: SqlValue[] } {
  const sets: string[] = [];
  const values: SqlValue[] = [];
  for (const [k, v] of Object.entries(patch)) {
    const col = columns[k];
    if (!col || v === undefined) continue;
    sets.push(`${col} = ?`);
    values.push(v as SqlValue);
  }
  return { sql: sets.join(', '), values };
}

export function createIamStore(db: Db): IamStore {
  return {
    async insertAccount(a) {
      await db.run(
        'INSERT INTO accounts (id, tenant_id, name, kind, role, created_at, status, role_fleet, description, created_by, idp_issuer, idp_subject) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
        [
          a.id,
          a.tenant,
          a.name,
          a.kind,
          a.role,
          a.createdAt,
          a.status,
          a.roleFleet,
          a.description,
          a.createdBy,
          a.idpIssuer,
          a.idpSubject,
        ],
      );
      await db.run('INSERT INTO account_credentials (account_id, failed_logins) VALUES (?, 0)', [a.id]);
    },
    async getAccount(id) {
      const r = await db.get<Row>('SELECT * FROM accounts WHERE id = ?', [id]);
      return r && account(r);
    },
    async findAccountByName(tenant, name) {
      const r = await db.get<Row>('SELECT * FROM accounts WHERE tenant_id = ? AND name = ?', [tenant, name]);
      return r && account(r);
    },
    async findAccountByIdp(tenant, issuer, subject) {
      const r = await db.get<Row>(
        'SELECT * FROM accounts WHERE tenant_id = ? AND idp_issuer = ? AND idp_subject = ?',
        [tenant, issuer, subject],
      );
      return r && account(r);
    },
    async listAccounts(tenant, kind) {
      const rows = await db.all<Row>(
        'SELECT * FROM accounts WHERE tenant_id = ? AND kind = ? ORDER BY name',
        [tenant, kind],
      );
      return rows.map(account);
    },
    async updateAccount(id, patch) {
      const { sql, values } = setClause(patch, ACCOUNT_COLUMNS);
      if (sql) await db.run(`UPDATE accounts SET ${sql} WHERE id = ?`, [...values, id]);
    },
    async deleteAccount(id) {
      await db.transaction(async (tx) => {
        await tx.run('DELETE FROM recovery_codes WHERE account_id = ?', [id]);
        await tx.run('DELETE FROM account_credentials WHERE account_id = ?', [id]);
        await tx.run('DELETE FROM accounts WHERE id = ?', [id]);
      });
    },
    async countAccounts(tenant) {
      const r = await db.get<Row>('SELECT COUNT(*) AS n FROM accounts WHERE tenant_id = ?', [tenant]);
      return Number(r?.n ?? 0);
    },
    async countActiveWithRole(tenant, roleName) {
      const r = await db.get<Row>(
        "SELECT COUNT(*) AS n FROM accounts WHERE tenant_id = ? AND role = ? AND status = 'active' AND role_fleet IS NULL",
        [tenant, roleName],
      );
      return Number(r?.n ?? 0);
    },
    async countWithRole(tenant, roleName) {
      const r = await db.get<Row>('SELECT COUNT(*) AS n FROM accounts WHERE tenant_id = ? AND role = ?', [
        tenant,
        roleName,
      ]);
      return Number(r?.n ?? 0);
    },

    async getCredentials(accountId) {
      const r = await db.get<Row>('SELECT * FROM account_credentials WHERE account_id = ?', [accountId]);
      if (!r) return undefined;
      const c: Credentials = {
        accountId,
        passwordHash: str(r.password_hash),
        passwordChangedAt: num(r.password_changed_at),
        failedLogins: Number(r.failed_logins ?? 0),
        lockedUntil: num(r.locked_until),
        totpSecret: str(r.totp_secret),
        totpPending: str(r.totp_pending),
        totpLastStep: num(r.totp_last_step),
      };
      return c;
    },
    async updateCredentials(accountId, patch) {
      const { sql, values } = setClause(patch, CREDENTIAL_COLUMNS);
      if (!sql) return;
      const { changes } = await db.run(`UPDATE account_credentials SET ${sql} WHERE account_id = ?`, [
        ...values,
        accountId,
      ]);
      if (changes === 0) {
        // Accounts made before migration 0020 have no credentials row yet.
        await db.run('INSERT INTO account_credentials (account_id, failed_logins) VALUES (?, 0)', [
          accountId,
        ]);
        await db.run(`UPDATE account_credentials SET ${sql} WHERE account_id = ?`, [...values, accountId]);
      }
    },
    async replaceRecoveryCodes(accountId, hashes) {
      await db.transaction(async (tx) => {
        await tx.run('DELETE FROM recovery_codes WHERE account_id = ?', [accountId]);
        for (const h of hashes)
          await tx.run('INSERT INTO recovery_codes (account_id, hash, used_at) VALUES (?, ?, NULL)', [
            accountId,
            h,
          ]);
      });
    },
    async useRecoveryCode(accountId, hash, now) {
      const { changes } = await db.run(
        'UPDATE recovery_codes SET used_at = ? WHERE account_id = ? AND hash = ? AND used_at IS NULL',
        [now, accountId, hash],
      );
      return changes === 1;
    },

    async insertToken(t) {
      await db.run(
        'INSERT INTO api_tokens (id, tenant_id, account_id, name, hash, created_at, expires_at, last_used_at, revoked_at, scope, created_by, mfa) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
        [
          t.id,
          t.tenant,
          t.accountId,
          t.name,
          t.hash,
          t.createdAt,
          t.expiresAt,
          t.lastUsedAt,
          t.revokedAt,
          t.scope ? JSON.stringify(t.scope) : null,
          t.createdBy,
          t.mfa === true ? 1 : 0,
        ],
      );
    },
    async findTokenByHash(hash) {
      const r = await db.get<Row>('SELECT * FROM api_tokens WHERE hash = ?', [hash]);
      return r && token(r);
    },
    async getToken(id) {
      const r = await db.get<Row>('SELECT * FROM api_tokens WHERE id = ?', [id]);
      return r && token(r);
    },
    async listTokens(accountId) {
      const rows = await db.all<Row>(
        'SELECT * FROM api_tokens WHERE account_id = ? ORDER BY created_at, id',
        [accountId],
      );
      return rows.map(token);
    },
    async revokeToken(id, now) {
      await db.run('UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL', [now, id]);
    },
    async revokeTokensOf(accountId, now) {
      const { changes } = await db.run(
        'UPDATE api_tokens SET revoked_at = ? WHERE account_id = ? AND revoked_at IS NULL',
        [now, accountId],
      );
      return changes;
    },
    async touchToken(id, now) {
      await db.run('UPDATE api_tokens SET last_used_at = ? WHERE id = ?', [now, id]);
    },

    async insertRole(r) {
      return db.transaction(async (tx) => {
        const last = await tx.get<Row>(
          'SELECT MAX(version) AS v FROM role_versions WHERE tenant_id = ? AND name = ?',
          [r.tenant, r.name],
        );
        const version = Number(last?.v ?? 0) + 1;
        const statements = JSON.stringify(r.statements);
        await tx.run(
          'INSERT INTO roles (tenant_id, name, description, statements, created_at, created_by, version) VALUES (?, ?, ?, ?, ?, ?, ?)',
          [r.tenant, r.name, r.description, statements, r.createdAt, r.createdBy, version],
        );
        await tx.run(
          'INSERT INTO role_versions (tenant_id, name, version, deleted, description, statements, created_at, created_by) VALUES (?, ?, ?, 0, ?, ?, ?, ?)',
          [r.tenant, r.name, version, r.description, statements, r.createdAt, r.createdBy],
        );
        return { ...r, version, updatedAt: null, updatedBy: null };
      });
    },
    async updateRole(tenant, name, fromVersion, patch) {
      return db.transaction(async (tx) => {
        const statements = JSON.stringify(patch.statements);
        // Compare-and-set on the version: two writers never both build on the same version.
        const { changes } = await tx.run(
          'UPDATE roles SET description = ?, statements = ?, version = ?, updated_at = ?, updated_by = ? WHERE tenant_id = ? AND name = ? AND version = ?',
          [patch.description, statements, fromVersion + 1, patch.at, patch.by, tenant, name, fromVersion],
        );
        if (changes !== 1) return undefined;
        await tx.run(
          'INSERT INTO role_versions (tenant_id, name, version, deleted, description, statements, created_at, created_by) VALUES (?, ?, ?, 0, ?, ?, ?, ?)',
          [tenant, name, fromVersion + 1, patch.description, statements, patch.at, patch.by],
        );
        const r = await tx.get<Row>('SELECT * FROM roles WHERE tenant_id = ? AND name = ?', [tenant, name]);
        return r && role(r);
      });
    },
    async listRoles(tenant) {
      const rows =
        tenant === undefined
          ? await db.all<Row>('SELECT * FROM roles ORDER BY tenant_id, name')
          : await db.all<Row>('SELECT * FROM roles WHERE tenant_id = ? ORDER BY name', [tenant]);
      return rows.map(role);
    },
    async deleteRole(tenant, name, at, by) {
      return db.transaction(async (tx) => {
        const r = await tx.get<Row>('SELECT * FROM roles WHERE tenant_id = ? AND name = ?', [tenant, name]);
        if (!r) return false;
        const { changes } = await tx.run('DELETE FROM roles WHERE tenant_id = ? AND name = ?', [
          tenant,
          name,
        ]);
        if (changes !== 1) return false;
        await tx.run(
          'INSERT INTO role_versions (tenant_id, name, version, deleted, description, statements, created_at, created_by) VALUES (?, ?, ?, 1, ?, ?, ?, ?)',
          [tenant, name, Number(r.version ?? 1) + 1, str(r.description), String(r.statements), at, by],
        );
        return true;
      });
    },
    async listRoleVersions(tenant, name) {
      const rows = await db.all<Row>(
        'SELECT * FROM role_versions WHERE tenant_id = ? AND name = ? ORDER BY version DESC',
        [tenant, name],
      );
      return rows.map(roleVersion);
    },

    async insertSession(s) {
      await db.run(
        'INSERT INTO sessions (id, tenant_id, account_id, auth_method, mfa, created_at, last_seen_at, expires_at, revoked_at, source, user_agent) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
        [
          s.id,
          s.tenant,
          s.accountId,
          s.authMethod,
          s.mfa ? 1 : 0,
          s.createdAt,
          s.lastSeenAt,
          s.expiresAt,
          s.revokedAt,
          s.source,
          s.userAgent,
        ],
      );
    },
    async getSession(id) {
      const r = await db.get<Row>('SELECT * FROM sessions WHERE id = ?', [id]);
      return r && session(r);
    },
    async touchSession(id, now) {
      await db.run('UPDATE sessions SET last_seen_at = ? WHERE id = ?', [now, id]);
    },
    async revokeSession(id, now) {
      await db.run('UPDATE sessions SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL', [now, id]);
    },
    async revokeSessionsOf(accountId, now, exceptId) {
      const { changes } = await db.run(
        'UPDATE sessions SET revoked_at = ? WHERE account_id = ? AND revoked_at IS NULL AND expires_at > ? AND id <> ?',
        [now, accountId, now, exceptId ?? ''],
      );
      return changes;
    },
    async listSessions(accountId, now) {
      const rows = await db.all<Row>(
        'SELECT * FROM sessions WHERE account_id = ? AND revoked_at IS NULL AND expires_at > ? ORDER BY created_at',
        [accountId, now],
      );
      return rows.map(session);
    },

    async insertPasswordToken(t) {
      await db.run(
        'INSERT INTO password_tokens (hash, tenant_id, account_id, purpose, created_at, expires_at, used_at) VALUES (?, ?, ?, ?, ?, ?, NULL)',
        [t.hash, t.tenant, t.accountId, t.purpose, t.createdAt, t.expiresAt],
      );
    },
    async peekPasswordToken(hash) {
      const r = await db.get<Row>('SELECT * FROM password_tokens WHERE hash = ? AND used_at IS NULL', [hash]);
      if (!r) return undefined;
      const t: PasswordToken = {
        hash,
        tenant: String(r.tenant_id),
        accountId: String(r.account_id),
        purpose: r.purpose as PasswordToken['purpose'],
        createdAt: Number(r.created_at),
        expiresAt: Number(r.expires_at),
        usedAt: null,
      };
      return t;
    },
    async usePasswordToken(hash, now) {
      return db.transaction(async (tx) => {
        const r = await tx.get<Row>('SELECT * FROM password_tokens WHERE hash = ? AND used_at IS NULL', [
          hash,
        ]);
        if (!r) return undefined;
        const { changes } = await tx.run(
          'UPDATE password_tokens SET used_at = ? WHERE hash = ? AND used_at IS NULL',
          [now, hash],
        );
        if (changes !== 1) return undefined;
        const t: PasswordToken = {
          hash,
          tenant: String(r.tenant_id),
          accountId: String(r.account_id),
          purpose: r.purpose as PasswordToken['purpose'],
          createdAt: Number(r.created_at),
          expiresAt: Number(r.expires_at),
          usedAt: now,
        };
        return t;
      });
    },

    async getSettings(tenant) {
      const r = await db.get<Row>('SELECT * FROM security_settings WHERE tenant_id = ?', [tenant]);
      return (
        r && {
          tenant,
          mfaRequired: Number(r.mfa_required) === 1,
          mfaRequiredRoles: JSON.parse(String(r.mfa_required_roles)) as string[],
        }
      );
    },
    async putSettings(s, now) {
      await db.transaction(async (tx) => {
        await tx.run('DELETE FROM security_settings WHERE tenant_id = ?', [s.tenant]);
        await tx.run(
          'INSERT INTO security_settings (tenant_id, mfa_required, mfa_required_roles, updated_at) VALUES (?, ?, ?, ?)',
          [s.tenant, s.mfaRequired ? 1 : 0, JSON.stringify(s.mfaRequiredRoles), now],
        );
      });
    },

    async getIdp(tenant) {
      const r = await db.get<Row>('SELECT * FROM idp_configs WHERE tenant_id = ?', [tenant]);
      if (!r) return undefined;
      const c: IdpConfig = {
        tenant,
        issuer: String(r.issuer),
        clientId: String(r.client_id),
        clientSecretSealed: str(r.client_secret),
        scopes: JSON.parse(String(r.scopes)) as string[],
        groupsClaim: String(r.groups_claim),
        roleMappings: JSON.parse(String(r.role_mappings)) as IdpConfig['roleMappings'],
        defaultRole: str(r.default_role),
        enabled: Number(r.enabled) === 1,
        updatedAt: Number(r.updated_at),
        updatedBy: String(r.updated_by),
      };
      return c;
    },
    async putIdp(c) {
      await db.transaction(async (tx) => {
        await tx.run('DELETE FROM idp_configs WHERE tenant_id = ?', [c.tenant]);
        await tx.run(
          'INSERT INTO idp_configs (tenant_id, issuer, client_id, client_secret, scopes, groups_claim, role_mappings, default_role, enabled, updated_at, updated_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
          [
            c.tenant,
            c.issuer,
            c.clientId,
            c.clientSecretSealed,
            JSON.stringify(c.scopes),
            c.groupsClaim,
            JSON.stringify(c.roleMappings),
            c.defaultRole,
            c.enabled ? 1 : 0,
            c.updatedAt,
            c.updatedBy,
          ],
        );
      });
    },
    async deleteIdp(tenant) {
      const { changes } = await db.run('DELETE FROM idp_configs WHERE tenant_id = ?', [tenant]);
      return changes === 1;
    },
    async insertOidcPending(p: OidcPending) {
      await db.run(
        'INSERT INTO oidc_pending (state_hash, tenant_id, binding_hash, code_verifier, nonce, created_at, expires_at, cli_request) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
        [
          p.stateHash,
          p.tenant,
          p.bindingHash,
          p.codeVerifier,
          p.nonce,
          p.createdAt,
          p.expiresAt,
          p.cliRequest ?? null,
        ],
      );
    },
    async takeOidcPending(stateHash) {
      return db.transaction(async (tx) => {
        const r = await tx.get<Row>('SELECT * FROM oidc_pending WHERE state_hash = ?', [stateHash]);
        if (!r) return undefined;
        const { changes } = await tx.run('DELETE FROM oidc_pending WHERE state_hash = ?', [stateHash]);
        if (changes !== 1) return undefined;
        const p: OidcPending = {
          stateHash,
          tenant: String(r.tenant_id),
          bindingHash: String(r.binding_hash),
          codeVerifier: String(r.code_verifier),
          nonce: String(r.nonce),
          createdAt: Number(r.created_at),
          expiresAt: Number(r.expires_at),
          cliRequest: str(r.cli_request),
        };
        return p;
      });
    },

    async insertCliRequest(r, now) {
      await db.run('DELETE FROM cli_sso_requests WHERE expires_at < ?', [now - 86_400_000]);
      await db.run(
        'INSERT INTO cli_sso_requests (handle_hash, tenant_id, redirect_uri, code_challenge, cli_state, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)',
        [r.handleHash, r.tenant, r.redirectUri, r.codeChallenge, r.cliState, r.createdAt, r.expiresAt],
      );
    },
    async startCliRequest(handleHash, now) {
      const { changes } = await db.run(
        'UPDATE cli_sso_requests SET started_at = ? WHERE handle_hash = ? AND started_at IS NULL AND expires_at > ?',
        [now, handleHash, now],
      );
      if (changes !== 1) return undefined;
      const r = await db.get<Row>('SELECT * FROM cli_sso_requests WHERE handle_hash = ?', [handleHash]);
      return r && cliRequest(r);
    },
    async getCliRequest(handleHash) {
      const r = await db.get<Row>('SELECT * FROM cli_sso_requests WHERE handle_hash = ?', [handleHash]);
      return r && cliRequest(r);
    },
    async setCliCode(handleHash, c) {
      const { changes } = await db.run(
        'UPDATE cli_sso_requests SET code_hash = ?, account_id = ?, mfa = ?, code_expires_at = ? WHERE handle_hash = ? AND code_hash IS NULL',
        [c.codeHash, c.accountId, c.mfa ? 1 : 0, c.codeExpiresAt, handleHash],
      );
      return changes === 1;
    },
    async useCliCode(codeHash, now) {
      const { changes } = await db.run(
        'UPDATE cli_sso_requests SET used_at = ? WHERE code_hash = ? AND used_at IS NULL',
        [now, codeHash],
      );
      if (changes !== 1) return undefined;
      const r = await db.get<Row>('SELECT * FROM cli_sso_requests WHERE code_hash = ?', [codeHash]);
      return r && cliRequest(r);
    },
    async findCliCode(codeHash) {
      const r = await db.get<Row>('SELECT * FROM cli_sso_requests WHERE code_hash = ?', [codeHash]);
      return r && cliRequest(r);
    },

    async ensureTenant(id, name, now) {
      const existing = await db.get('SELECT id FROM tenants WHERE id = ?', [id]);
      if (existing) return false;
      await db.run('INSERT INTO tenants (id, name, created_at) VALUES (?, ?, ?)', [id, name, now]);
      return true;
    },
  };
}
