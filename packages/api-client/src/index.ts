export { createOperations, operations, type Operations } from './generated.ts';
export type * from './generated.ts';
export type { ApiTransport, QueryValue } from './runtime.ts';
