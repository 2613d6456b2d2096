export type AccountKind = 'user' | 'service';

export interface Account {
  readonly id: string;
  readonly tenant: string;
  readonly name: string;
  readonly kind: AccountKind;
  readonly role: string;
  readonly createdAt: number;
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
}

export interface IamStore {
  insertAccount(a: Account): Promise<void>;
  getAccount(id: string): Promise<Account | undefined>;
  countAccounts(tenant: string): Promise<number>;
  insertToken(t: TokenRecord): Promise<void>;
  findTokenByHash(hash: string): Promise<TokenRecord | undefined>;
  touchToken(id: string, now: number): Promise<void>;
  ensureTenant(id: string, name: string, now: number): Promise<boolean>;
}
