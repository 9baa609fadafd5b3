/**
 * The logger Switchyard writes to. `console` satisfies it, and so does a pino logger. Switchyard
 * writes one readable line per lifecycle event and per failure, and nothing per message.
 */
export interface Logger {
  debug?(line: string): void;
  info(line: string): void;
  warn(line: string): void;
  error(line: string): void;
}

/** Prefixes every line with `[switchyard] <scope>` and writes to console. */
export function consoleLogger(scope = ''): Logger {
  const prefix = scope ? `[switchyard] ${scope}:` : '[switchyard]';
  return {
    info: (line) => console.log(`${prefix} ${line}`),
    warn: (line) => console.warn(`${prefix} ${line}`),
    error: (line) => console.error(`${prefix} ${line}`),
  };
}

export const silentLogger: Logger = { info() {}, warn() {}, error() {} };
