/** Structured logger shape (pino-compatible); secrets never go to the log. */
export interface Logger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
  child(bindings: object): Logger;
}

export const silentLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
  child() {
    return silentLogger;
  },
};

export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent';

const order: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 99 };

/** JSON lines on stderr, one object per event. */
export function jsonLogger(
  level: LogLevel,
  bindings: object = {},
  write = (line: string) => process.stderr.write(line),
): Logger {
  const at = order[level];
  const emit = (lvl: Exclude<LogLevel, 'silent'>) => (obj: object, msg?: string) => {
    if (order[lvl] < at) return;
    write(
      JSON.stringify({
        level: lvl,
        time: new Date().toISOString(),
        ...bindings,
        ...obj,
        ...(msg ? { msg } : {}),
      }) + '\n',
    );
  };
  return {
    debug: emit('debug'),
    info: emit('info'),
    warn: emit('warn'),
    error: emit('error'),
    child: (more) => jsonLogger(level, { ...bindings, ...more }, write),
  };
}
