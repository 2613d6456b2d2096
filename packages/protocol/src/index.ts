export * from './errors.ts';
export * from './topics.ts';
export * from './capability-fields.ts';
