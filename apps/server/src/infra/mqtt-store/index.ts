// SQL implementations of @bulwark/broker's SessionStore and RetainedStore ports (SQLite and PostgreSQL).
export { createSqlSessionStore, type SqlSessionStoreOptions } from './sql-session-store.ts';
export { createSqlRetainedStore } from './sql-retained-store.ts';
