/**
 * Reading stored messages: the one place that turns what a transport holds (a row of a queue
 * table, a jsonb value, an injected object) into a TransportMessage. Anything can be in a queue
 * (an older version, another tool, a bug), so this never throws and never evaluates what it
 * reads: headers are data. What cannot be read as sent is kept for operators and marked:
 *
 * - `sy1-envelope-error`: what was wrong (headers not JSON, not an object, a value that is not a
 *   string, an id or body that is not text, ...). The pipeline sends such a message straight to
 *   the error queue, without retries (the decode step, src/endpoint/incoming.ts);
 * - `sy1-envelope-raw-headers`: the stored headers as read, cut to RAW_PREVIEW_CHARS.
 *
 * The readable string headers are kept beside them (the id, the type, the sender), so the error
 * queue tools can show who sent it. SQLite, memory and PostgreSQL use this same code.
 */
import { Headers, type HeaderMap } from './headers.js';
import type { TransportMessage } from './transport.js';

/** Headers text longer than this is not parsed (a size limit before parsing). */
export const MAX_STORED_HEADERS_CHARS = 1024 * 1024;
/** How much of unreadable headers is kept in `sy1-envelope-raw-headers`. */
export const RAW_PREVIEW_CHARS = 8 * 1024;
/** Ids longer than this are not ids. */
export const MAX_ID_CHARS = 1024;
const MAX_PROBLEM_CHARS = 2000;
/** Header names with bad values named one by one in the problem text; the rest are counted. */
const NAMED_PROBLEMS = 5;

/** A stored message as the store gave it: any of the three may be anything. */
export interface StoredMessage {
  readonly id: unknown;
  readonly headers: unknown;
  readonly body: unknown;
}

/** A short description of any value for logs and problem texts; never calls the value's own methods. */
export function safeText(value: unknown, max = 200): string {
  let text: string;
  if (typeof value === 'string') text = value;
  else if (value === null || value === undefined || typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') text = String(value);
  else if (typeof value === 'symbol' || typeof value === 'function') text = `[${typeof value}]`;
  else {
    try {
      text = JSON.stringify(value) ?? Object.prototype.toString.call(value);
    } catch {
      text = Object.prototype.toString.call(value);
    }
  }
  text = text.replace(/[\u0000-\u001f\u007f-\u009f]+/g, ' ');
  return text.length > max ? `${text.slice(0, Math.max(0, max - 1))}…` : text;
}

/** `a string`, `an object`, `null`, `an array`, `3 bytes`: what a value is, for a problem text. */
function kindOf(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'missing';
  if (Array.isArray(value)) return 'an array';
  if (value instanceof Uint8Array) return `${value.byteLength} bytes`;
  const type = typeof value;
  return type === 'object' ? 'an object' : `a ${type}`;
}

function isBytes(value: unknown): value is Uint8Array {
  return value instanceof Uint8Array;
}

const decoder = new TextDecoder('utf-8', { fatal: false });

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value) as unknown;
  return proto === Object.prototype || proto === null;
}

/** True when `value` is an object whose own values are all strings (the fast path: nothing to copy). */
function isStringMap(value: Record<string, unknown>): boolean {
  for (const key of Object.keys(value)) if (typeof value[key] !== 'string') return false;
  return true;
}

interface DecodedHeaders {
  headers: HeaderMap;
  problems: string[];
  /** The stored text, when it has to be kept for operators. */
  raw: string | undefined;
}

/** Headers from a store: JSON text (SQLite), an already parsed object (jsonb, memory), or anything else. */
export function decodeHeaders(stored: unknown): DecodedHeaders {
  try {
    return decodeHeadersUnsafe(stored);
  } catch (thrown) {
    // A proxy or getter that throws (only in-process code can hand those over).
    return { headers: {}, problems: [`headers could not be read (${safeText(thrown instanceof Error ? thrown.message : thrown)})`], raw: undefined };
  }
}

function decodeHeadersUnsafe(stored: unknown): DecodedHeaders {
  const problems: string[] = [];
  let text: string | undefined;
  let value: unknown = stored;
  if (isBytes(stored)) {
    problems.push(`headers are ${stored.byteLength} bytes, not text`);
    text = decoder.decode(stored.byteLength > MAX_STORED_HEADERS_CHARS ? stored.subarray(0, RAW_PREVIEW_CHARS) : stored);
  } else if (typeof stored === 'string') {
    text = stored;
  }
  if (text !== undefined) {
    if (text.length > MAX_STORED_HEADERS_CHARS) {
      problems.push(`headers are ${text.length} characters, over the ${MAX_STORED_HEADERS_CHARS} a stored message may have; not parsed`);
      return { headers: {}, problems, raw: text };
    }
    try {
      value = JSON.parse(text);
    } catch (cause) {
      problems.push(`headers are not valid JSON (${safeText((cause as Error).message, 120)})`);
      return { headers: {}, problems, raw: text };
    }
  }
  if (!isPlainObject(value)) {
    const json = value === null ? 'null' : Array.isArray(value) ? 'array' : typeof value;
    problems.push(`headers are ${text === undefined ? kindOf(value) : `JSON ${json}`}, not an object`);
    return { headers: {}, problems, raw: text ?? safeText(value, RAW_PREVIEW_CHARS) };
  }
  if (problems.length === 0 && isStringMap(value)) return { headers: value as HeaderMap, problems, raw: undefined };
  const entries: [string, string][] = [];
  const bad: string[] = [];
  for (const key of Object.keys(value)) {
    const v = value[key];
    if (typeof v === 'string') entries.push([key, v]);
    else bad.push(`header ${JSON.stringify(safeText(key, 80))} is ${kindOf(v)}, not a string`);
  }
  if (bad.length > 0) {
    problems.push(...bad.slice(0, NAMED_PROBLEMS));
    if (bad.length > NAMED_PROBLEMS) problems.push(`${bad.length - NAMED_PROBLEMS} more headers are not strings`);
  }
  // fromEntries defines own properties: a `__proto__` header stays a header, never a prototype.
  return { headers: Object.fromEntries(entries), problems, raw: text ?? safeText(value, RAW_PREVIEW_CHARS) };
}

function idProblem(id: unknown): string | undefined {
  if (typeof id === 'string') {
    if (id.length === 0) return 'the id is missing';
    return id.length > MAX_ID_CHARS ? `the id is ${id.length} characters, over ${MAX_ID_CHARS}` : undefined;
  }
  return id === null || id === undefined ? 'the id is missing' : `the id is ${kindOf(id)}, not text`;
}

function readBody(body: unknown, problems: string[]): string {
  if (typeof body === 'string') return body;
  if (isBytes(body)) {
    problems.push(`the body is ${body.byteLength} bytes, not text`);
    return decoder.decode(body);
  }
  problems.push(body === null || body === undefined ? 'the body is missing' : `the body is ${kindOf(body)}, not text`);
  return body === null || body === undefined ? '' : safeText(body, Number.MAX_SAFE_INTEGER);
}

/**
 * A TransportMessage from what a store holds; never throws. `fallbackId` names the message when
 * its id cannot be used and its headers carry no readable message id (e.g. `row-<seq>`): keep it
 * stable across reads, so peek, show and take agree.
 */
export function decodeStoredMessage(stored: StoredMessage, fallbackId: string): TransportMessage {
  try {
    return decodeStoredMessageUnsafe(stored, fallbackId);
  } catch (thrown) {
    // Only in-process code can hand over something whose reading throws (a proxy, a getter).
    const problem = `the message could not be read (${safeText(thrown instanceof Error ? thrown.message : thrown)})`;
    return { id: fallbackId, headers: markMalformed({}, [problem], undefined), body: '' };
  }
}

function decodeStoredMessageUnsafe(stored: StoredMessage, fallbackId: string): TransportMessage {
  const { headers, problems, raw } = decodeHeaders(stored.headers);
  const body = readBody(stored.body, problems);
  const badId = idProblem(stored.id);
  let id = stored.id as string;
  if (badId !== undefined) {
    problems.push(badId);
    const fromHeader = headers[Headers.MessageId];
    id = typeof fromHeader === 'string' && idProblem(fromHeader) === undefined ? fromHeader : fallbackId;
  }
  if (problems.length === 0) return { id, headers, body };
  return { id, headers: markMalformed(headers, problems, raw), body };
}

function markMalformed(headers: HeaderMap, problems: readonly string[], raw: string | undefined): HeaderMap {
  const marked: HeaderMap = Object.fromEntries(Object.entries(headers));
  const text = problems.join('; ');
  marked[Headers.EnvelopeError] = text.length > MAX_PROBLEM_CHARS ? `${text.slice(0, MAX_PROBLEM_CHARS - 1)}…` : text;
  if (raw !== undefined) marked[Headers.RawHeaders] = raw.length > RAW_PREVIEW_CHARS ? `${raw.slice(0, RAW_PREVIEW_CHARS - 1)}…` : raw;
  return marked;
}

export interface Envelope {
  /** The message with a plain string map of headers: the one received, or a safe copy of it. */
  readonly message: TransportMessage;
  /** What was wrong with it, when something was (from the transport, or found here). */
  readonly problem: string | undefined;
}

/**
 * The pipeline's first step: is this a message it can process? A transport that read a stored
 * message it could not read as sent has marked it (`sy1-envelope-error`); one that hands over
 * objects as they are (memory) may pass anything, which is checked and made safe here.
 */
export function readEnvelope(message: TransportMessage, fallbackId: () => string): Envelope {
  const m = message as unknown as StoredMessage | null | undefined;
  let wellFormed = false;
  try {
    wellFormed =
      typeof m === 'object' && m !== null && typeof m.id === 'string' && idProblem(m.id) === undefined && typeof m.body === 'string' &&
      isPlainObject(m.headers) && isStringMap(m.headers);
  } catch {
    // a getter that throws: not well formed; decodeStoredMessage says so
  }
  const safe = wellFormed ? message : decodeStoredMessage(typeof m === 'object' && m !== null ? m : { id: undefined, headers: undefined, body: undefined }, fallbackId());
  const problem = safe.headers[Headers.EnvelopeError];
  return { message: safe, problem: typeof problem === 'string' ? problem : undefined };
}
