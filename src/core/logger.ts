/**
 * The logger Switchyard writes to: pino-compatible, so a pino logger (or `console`) satisfies it.
 * A line is `logger.info('text')` or `logger.info({ fields }, 'text')`; an error goes in the `err`
 * field as the Error object, so a structured logger keeps its type and stack. Switchyard writes one
 * line per lifecycle event and per failure, and nothing per message that succeeds.
 */
export type LogFields = Readonly<Record<string, unknown>>;

export interface LogMethod {
  (fields: LogFields, line: string): void;
  (line: string): void;
}

export interface Logger {
  debug?: LogMethod;
  info: LogMethod;
  warn: LogMethod;
  error: LogMethod;
}

/**
 * A logger that adds `fields` to every line it writes to `logger` (the line's own fields win),
 * like pino's `child(bindings)` but for any Logger.
 */
export function withFields(logger: Logger, fields: LogFields): Logger {
  const bind = (level: LogLevel): LogMethod | undefined => {
    if (!logger[level]) return undefined;
    // Called as a method: pino's methods need their `this`.
    return ((first: LogFields | string, line?: string) =>
      typeof first === 'string' ? logger[level]!(fields, first) : logger[level]!({ ...fields, ...first }, line ?? '')) as LogMethod;
  };
  const bound: Logger = { info: bind('info')!, warn: bind('warn')!, error: bind('error')! };
  const debug = bind('debug');
  if (debug) bound.debug = debug;
  return bound;
}

/** `key=value` pairs after the text; the `err` field's stack goes on the lines below. */
function format(first: LogFields | string, line: string | undefined): string {
  if (typeof first === 'string') return first;
  let text = line ?? '';
  let stack = '';
  for (const key in first) {
    const value = first[key];
    if (value === undefined) continue;
    if (key === 'err' && value instanceof Error) {
      stack = `\n${value.stack ?? `${value.name}: ${value.message}`}`;
      continue;
    }
    text += ` ${key}=${typeof value === 'string' ? value : JSON.stringify(value)}`;
  }
  return text + stack;
}

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

/**
 * A Logger from a function that writes text: structured fields become `key=value` pairs after
 * the text, an `err` field's stack the lines below it. For tests, demos and plain-text sinks.
 */
export function lineLogger(write: (level: LogLevel, text: string) => void, options: { debug?: boolean } = {}): Logger {
  const method = (level: LogLevel) => ((first: LogFields | string, line?: string) => write(level, format(first, line))) as LogMethod;
  const logger: Logger = { info: method('info'), warn: method('warn'), error: method('error') };
  if (options.debug) logger.debug = method('debug');
  return logger;
}

/** Prefixes every line with `[switchyard] <scope>` and writes to console. */
export function consoleLogger(scope = ''): Logger {
  const prefix = scope ? `[switchyard] ${scope}:` : '[switchyard]';
  return lineLogger((level, text) => (level === 'info' ? console.log : level === 'warn' ? console.warn : console.error)(`${prefix} ${text}`));
}

const ignore = (() => {}) as LogMethod;
export const silentLogger: Logger = { info: ignore, warn: ignore, error: ignore };
