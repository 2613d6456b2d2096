import { errorCatalog, type ErrorCode, type ErrorKind } from '@bulwark/protocol';

/**
 * The only error type services throw on purpose. `message` is safe for the client;
 * `detail` is for the log only and never leaves the process.
 */
export class AppError extends Error {
  readonly code: ErrorCode;
  readonly kind: ErrorKind;
  readonly detail: string | undefined;
  readonly errors: { path: string; message: string }[] | undefined;
  /** For rate_limited errors: seconds the client should wait (HTTP `Retry-After`). */
  readonly retryAfterSeconds: number | undefined;

  constructor(
    code: ErrorCode,
    message?: string,
    options: {
      detail?: string;
      cause?: unknown;
      errors?: { path: string; message: string }[];
      retryAfterSeconds?: number;
    } = {},
  ) {
    super(message ?? errorCatalog[code].title, { cause: options.cause });
    this.name = 'AppError';
    this.code = code;
    this.kind = errorCatalog[code].kind;
    this.detail = options.detail;
    this.errors = options.errors;
    this.retryAfterSeconds = options.retryAfterSeconds;
  }
}

export function isAppError(err: unknown): err is AppError {
  return err instanceof AppError;
}
