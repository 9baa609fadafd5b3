/**
 * Turning bodies into transport messages and back. Everything read here came off the wire and
 * is untrusted: sizes are checked before parsing, type names only select registered
 * definitions, and a body that could poison prototypes is refused, never altered.
 */
import { systemClock } from './clock.js';
import { ErrorCodes, SwitchyardError } from './errors.js';
import { Headers, JSON_CONTENT_TYPE, type HeaderMap, type Intent } from './headers.js';
import { traceParent, uuidv7 } from './ids.js';
import type { Address, InstanceIdentity } from './identity.js';
import type { MessageDefinition } from './messages.js';
import { enclosedTypes } from './messages.js';
import type { TransportMessage } from './transport.js';

export interface MessageLimits {
  /** Largest body accepted, in UTF-8 bytes (default 1 MiB). */
  maxBodyBytes: number;
  /** Most headers accepted (default 64). */
  maxHeaders: number;
  /** Largest total of header names and values, in characters (default 16 KiB). */
  maxHeaderBytes: number;
}

export const DEFAULT_LIMITS: MessageLimits = { maxBodyBytes: 1024 * 1024, maxHeaders: 64, maxHeaderBytes: 16 * 1024 };

/**
 * Could the text hold a `__proto__` key or a `constructor` key (also when spelt with \u escapes)?
 * Only then is the slower reviver needed; most bodies skip it.
 */
const MAYBE_POISONED = /__proto__|constructor|\\u/;

/**
 * JSON.parse makes `__proto__` an own property (no pollution yet), but code that later merges the
 * body into another object would set that object's prototype; `constructor.prototype` reaches
 * Object.prototype the same way. Such bodies are refused as a whole (like secure-json-parse's
 * default): users' keys are never dropped or changed, and nothing is polluted.
 */
function refusePoisonKeys(this: unknown, key: string, value: unknown): unknown {
  if (key === '__proto__') throw new PoisonedBody('__proto__');
  if (key === 'constructor' && typeof value === 'object' && value !== null && Object.hasOwn(value, 'prototype')) {
    throw new PoisonedBody('constructor.prototype');
  }
  return value;
}

class PoisonedBody extends Error {
  constructor(readonly key: string) {
    super(`The body has a ${key} key, which could poison object prototypes.`);
  }
}

/**
 * True when `text` takes at most `maxBytes` in UTF-8. A UTF-16 unit takes one to three bytes, so
 * the length bounds it both ways and the bytes are only counted when those bounds do not decide.
 */
export function utf8BytesAtMost(text: string, maxBytes: number): boolean {
  return text.length <= maxBytes && (text.length * 3 <= maxBytes || Buffer.byteLength(text) <= maxBytes);
}

export function checkBodySize(body: string, limits: MessageLimits): void {
  if (!utf8BytesAtMost(body, limits.maxBodyBytes)) {
    throw new SwitchyardError(ErrorCodes.MESSAGE_TOO_LARGE, `The body is ${Buffer.byteLength(body)} bytes, over the limit of ${limits.maxBodyBytes}.`, {
      fix: 'Send a reference to the data (a URL or a key in a store) instead of the data, or raise limits.maxBodyBytes on every endpoint that handles it.',
    });
  }
}

export function checkHeaders(headers: HeaderMap, limits: MessageLimits): void {
  let count = 0;
  let size = 0;
  for (const key in headers) {
    const value = headers[key];
    if (typeof value !== 'string') {
      throw new SwitchyardError(ErrorCodes.INVALID_HEADER, `Header ${JSON.stringify(key)} is not a string.`, { fix: 'Header values must be strings.' });
    }
    count += 1;
    size += key.length + value.length;
  }
  if (count > limits.maxHeaders || size > limits.maxHeaderBytes) {
    throw new SwitchyardError(
      ErrorCodes.MESSAGE_TOO_LARGE,
      `The message has ${count} headers totalling ${size} characters; the limits are ${limits.maxHeaders} headers and ${limits.maxHeaderBytes} characters.`,
      { fix: 'Carry data in the body, not in headers, or raise limits.maxHeaders / limits.maxHeaderBytes.' },
    );
  }
}

export function parseBody(body: string): unknown {
  try {
    return MAYBE_POISONED.test(body) ? JSON.parse(body, refusePoisonKeys) : JSON.parse(body);
  } catch (cause) {
    if (cause instanceof PoisonedBody) {
      throw new SwitchyardError(ErrorCodes.MALFORMED_MESSAGE, `${cause.message} It is refused, not handled.`, {
        fix: 'Rename the key in the sender (no message needs a __proto__ key or constructor.prototype); a message that has one is likely an attack.',
      });
    }
    throw new SwitchyardError(ErrorCodes.MALFORMED_MESSAGE, `The body is not valid JSON: ${(cause as Error).message}.`, {
      fix: 'Send bodies as UTF-8 JSON (Switchyard senders always do); find the sender from the originating-endpoint header.',
      cause,
    });
  }
}

export function readEnclosedTypes(headers: HeaderMap): string[] {
  const raw = headers[Headers.EnclosedTypes];
  if (!raw) {
    throw new SwitchyardError(ErrorCodes.INVALID_HEADER, `The message has no ${Headers.EnclosedTypes} header, so its type is unknown.`, {
      fix: 'Send messages with a Switchyard endpoint, or set the header to the registered type name.',
    });
  }
  return raw.split(',');
}

/** What a new message inherits from the message being handled. */
export interface CausationSource {
  readonly messageId: string;
  readonly headers: HeaderMap;
}

export interface BuildOptions {
  readonly intent: Intent;
  readonly identity: InstanceIdentity;
  readonly replyTo: Address | undefined;
  readonly causedBy: CausationSource | undefined;
  readonly messageId?: string;
  readonly correlationId?: string;
  readonly headers?: HeaderMap;
  /** Epoch ms for the time-sent header (the endpoint's clock); the system clock when absent. */
  readonly now?: number;
}

/**
 * Stamps the standard headers. Correlation id: explicit, else the incoming one, else the
 * incoming message id. Conversation id: copied from the incoming message; a message that starts
 * a conversation uses its own id (unique already, and one id fewer to make per send).
 */
export function buildHeaders(types: readonly string[], options: BuildOptions): HeaderMap {
  return stampHeaders({ ...options.headers }, types, options);
}

/** buildHeaders into `headers` (the caller's own map, user headers already in it): no copy per send. */
export function stampHeaders(headers: HeaderMap, types: readonly string[], options: Omit<BuildOptions, 'headers'>): HeaderMap {
  const id = options.messageId ?? uuidv7();
  const incoming = options.causedBy?.headers;
  headers[Headers.MessageId] = id;
  headers[Headers.Intent] = options.intent;
  headers[Headers.EnclosedTypes] = types.length === 1 ? types[0]! : types.join(',');
  headers[Headers.CorrelationId] = options.correlationId ?? incoming?.[Headers.CorrelationId] ?? options.causedBy?.messageId ?? id;
  headers[Headers.ConversationId] = incoming?.[Headers.ConversationId] ?? id;
  headers[Headers.OriginatingEndpoint] = options.identity.endpoint;
  headers[Headers.OriginatingInstance] = options.identity.id;
  headers[Headers.OriginatingHost] = options.identity.host;
  headers[Headers.TimeSent] = new Date(options.now ?? systemClock.now()).toISOString();
  headers[Headers.ContentType] = JSON_CONTENT_TYPE;
  headers[Headers.TraceParent] = traceParent(incoming?.[Headers.TraceParent]);
  const traceState = incoming?.[Headers.TraceState];
  if (traceState !== undefined) headers[Headers.TraceState] = traceState;
  if (options.causedBy) headers[Headers.RelatedTo] = options.causedBy.messageId;
  if (options.replyTo) headers[Headers.ReplyTo] = options.replyTo;
  return headers;
}

export function buildMessage(definition: MessageDefinition, body: unknown, options: BuildOptions, limits: MessageLimits): TransportMessage {
  const headers = buildHeaders(enclosedTypes(definition), options);
  const text = JSON.stringify(body);
  if (text === undefined) {
    throw new SwitchyardError(ErrorCodes.VALIDATION_FAILED, `The body of ${definition.typeName} cannot be serialised to JSON.`, {
      fix: 'Pass a plain object of JSON values.',
    });
  }
  checkBodySize(text, limits);
  return { id: headers[Headers.MessageId]!, headers, body: text };
}
