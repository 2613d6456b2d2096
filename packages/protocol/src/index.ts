export * from './errors.ts';
export * from './topics.ts';
