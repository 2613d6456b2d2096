export * from './errors.ts';
export * from './clock.ts';
export * from './ids.ts';
export * from './logger.ts';
export * from './db.ts';
export * from './cursor.ts';
export * from './http-route.ts';
export * from './rate-limit.ts';
