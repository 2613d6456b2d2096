// Error types the CLI maps to exit codes. The HTTP client's own errors (ApiError, ConnectionError)
// live in http.ts because library users of createApiClient need them without the CLI.

export const EXIT_OK = 0;
/** The API answered with an error, or a local operation failed. */
export const EXIT_FAILURE = 1;
/** The command line is wrong: unknown command or flag, missing or invalid argument. */
export const EXIT_USAGE = 2;
/** The server could not be reached or its TLS certificate could not be verified. */
export const EXIT_CONNECTION = 3;

/** The user typed something we cannot run. Printed with the command's usage line; exit code 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
  /** Command path whose usage to show, e.g. ['device', 'create']. */
  readonly command: readonly string[] | undefined;

  constructor(message: string, command?: readonly string[]) {
    super(message);
    this.command = command;
  }
}

/** A local operation failed (file exists, cannot read CA file...). */
export class CliError extends Error {
  override readonly name = 'CliError';
  readonly exitCode: number;
  readonly hint: string | undefined;

  constructor(message: string, options: { hint?: string; exitCode?: number; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.exitCode = options.exitCode ?? EXIT_FAILURE;
    this.hint = options.hint;
  }
}
