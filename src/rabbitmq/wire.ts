/**
 * Transport messages on AMQP, always persistent (delivery mode 2). Headers with an AMQP property
 * of the same meaning travel in it: message id, correlation id, reply-to, and the enclosed types
 * as `type`. The rest, less the message id header and a conversation id equal to the message id
 * (a message that starts its conversation), restored on reading, travel as one JSON object,
 * placed by the wire format:
 *
 * - `envelope` (default): in the body, `{"headers":{...},"body":<the message's JSON>}`, with the
 *   content type `application/vnd.switchyard.envelope+json` (MassTransit carries its headers the
 *   same way). No AMQP header table at all.
 * - `headers`: the body is the message's JSON; the object is one string in the AMQP header
 *   `sy1-headers`, and the content type is the message's.
 *
 * Why the envelope: a header table is the costliest part of a message for amqplib and the broker
 * alike. With the same packed headers as a table instead, rabbitmq.send made 0.85 of raw
 * amqplib's throughput; with none, 1.00 (docs/rabbitmq.md). A table of many entries (one per
 * header) cost a fifth more on top of that.
 *
 * Read: both formats, whatever this transport writes, plus plain string AMQP headers (from other
 * tools, and the earlier form that packed every header). Headers the broker adds (x-death,
 * x-delivery-count, ...) and the transport's own bookkeeping headers (`x-sy-*`, kept as AMQP
 * headers in both formats) are not part of the message. An envelope that cannot be read keeps
 * its whole text as the body and loses its type, so the endpoint moves it to the error queue as
 * it came.
 */
import type { ConsumeMessage, GetMessage, MessageProperties, Options } from 'amqplib';
import { utf8BytesAtMost } from '../core/envelope.js';
import { Headers } from '../core/headers.js';
import type { TransportMessage } from '../core/transport.js';

/** Where the headers without an AMQP property travel: in the body (`envelope`) or in an AMQP header (`headers`). */
export type WireFormat = 'envelope' | 'headers';
export const WIRE_FORMATS: readonly WireFormat[] = ['envelope', 'headers'];

export const ENVELOPE_CONTENT_TYPE = 'application/vnd.switchyard.envelope+json';
const ENVELOPE_OPEN = '{"headers":';
const ENVELOPE_BODY_KEY = ',"body":';

/** Deliveries counted before a delayed abandon re-published the message (so the count continues). */
export const DELIVERY_BASE_HEADER = 'x-sy-delivery-base';
const PACKED = 'sy1-headers';
const BROKER_HEADERS = /^x-(death|first-death-|last-death-|delivery-count|sy-|received-from)/;
/** AMQP short strings hold at most 255 bytes; a longer value stays in the packed headers. */
const SHORT_STRING_BYTES = 255;

/** Headers carried as AMQP properties (besides the message id, which is the message's own). */
const AS_PROPERTY = {
  [Headers.CorrelationId]: 'correlationId',
  [Headers.ReplyTo]: 'replyTo',
  [Headers.EnclosedTypes]: 'type',
  [Headers.ContentType]: 'contentType',
} as const satisfies Record<string, keyof MessageProperties>;
type PropertyHeader = keyof typeof AS_PROPERTY;
/** The headers each format carries as properties: an envelope's content type is its own, so the message's travels packed. */
const PROPERTY_HEADERS: Record<WireFormat, readonly string[]> = {
  headers: Object.keys(AS_PROPERTY),
  envelope: Object.keys(AS_PROPERTY).filter((header) => header !== Headers.ContentType),
};

function copyStrings(from: Record<string, unknown>, into: Record<string, string>): void {
  for (const key of Object.keys(from)) {
    const value = from[key];
    if (typeof value === 'string' && key !== '__proto__' && key !== PACKED && !(key.startsWith('x-') && BROKER_HEADERS.test(key))) into[key] = value;
  }
}

const isBookkeeping = (key: string) => key.startsWith('x-sy-');

/** Left out of the packed headers when equal to the message id (most messages); `null` there when not set at all. */
const SAME_AS_ID: readonly string[] = [Headers.MessageId, Headers.ConversationId];

/** The packed headers' JSON, or undefined when it is not a JSON object. */
function parsePacked(text: string): Record<string, unknown> | undefined {
  try {
    const parsed: unknown = JSON.parse(text);
    return parsed && typeof parsed === 'object' && !Array.isArray(parsed) ? (parsed as Record<string, unknown>) : undefined;
  } catch {
    return undefined; // untrusted input
  }
}

/**
 * Splits an envelope without parsing the body. The packed headers are a flat object of strings
 * (and nulls), in which a `"` only ever delimits a string, so the first `},"body":` closes them.
 */
function splitEnvelope(text: string): { packed: string; body: string } | undefined {
  if (!text.startsWith(ENVELOPE_OPEN) || !text.endsWith('}')) return undefined;
  const end = text.indexOf(`}${ENVELOPE_BODY_KEY}`, ENVELOPE_OPEN.length) + 1;
  if (end === 0) return undefined;
  return { packed: text.slice(ENVELOPE_OPEN.length, end), body: text.slice(end + ENVELOPE_BODY_KEY.length, -1) };
}

export function fromAmqp(raw: ConsumeMessage | GetMessage): TransportMessage {
  const properties = raw.properties;
  const amqpHeaders = (properties.headers ?? {}) as Record<string, unknown>;
  const headers: Record<string, string> = {};
  copyStrings(amqpHeaders, headers);
  let body = raw.content.toString('utf8');
  const enveloped = properties.contentType === ENVELOPE_CONTENT_TYPE;
  const format: WireFormat = enveloped ? 'envelope' : 'headers';
  let packed: Record<string, unknown> | undefined;
  if (enveloped) {
    const split = splitEnvelope(body);
    packed = split && parsePacked(split.packed);
    if (packed) body = split!.body;
  } else if (typeof amqpHeaders[PACKED] === 'string') {
    packed = parsePacked(amqpHeaders[PACKED]);
  }
  if (packed) copyStrings(packed, headers);
  for (const header of PROPERTY_HEADERS[format]) {
    const value: unknown = properties[AS_PROPERTY[header as PropertyHeader]];
    if (typeof value === 'string') headers[header] = value;
  }
  // Unreadable envelope: without a type the endpoint sends it, whole, to the error queue.
  if (enveloped && !packed) delete headers[Headers.EnclosedTypes];
  const id = typeof properties.messageId === 'string' ? properties.messageId : (headers[Headers.MessageId] ?? '');
  if (packed && id) for (const header of SAME_AS_ID) if (!(header in packed)) headers[header] = id;
  return { id, headers, body };
}

/** The AMQP form of a message: its content and publish options. */
export function toAmqp(message: TransportMessage, format: WireFormat): { content: Buffer; options: Options.Publish } {
  const options: Options.Publish = { persistent: true, messageId: message.id };
  const asProperty = PROPERTY_HEADERS[format];
  let amqpHeaders: Record<string, string> | undefined;
  const packed: Record<string, string | null> = {};
  const { headers } = message;
  for (const header of SAME_AS_ID) if (headers[header] === undefined) packed[header] = null;
  for (const key in headers) {
    const value = headers[key]!;
    if (SAME_AS_ID.includes(key) && value === message.id) continue;
    if (asProperty.includes(key) && utf8BytesAtMost(value, SHORT_STRING_BYTES)) {
      options[AS_PROPERTY[key as PropertyHeader]] = value;
    } else if (isBookkeeping(key)) (amqpHeaders ??= {})[key] = value;
    else packed[key] = value;
  }
  if (format === 'envelope') {
    options.contentType = ENVELOPE_CONTENT_TYPE;
    if (amqpHeaders) options.headers = amqpHeaders;
    return { content: Buffer.from(`${ENVELOPE_OPEN}${JSON.stringify(packed)}${ENVELOPE_BODY_KEY}${message.body}}`, 'utf8'), options };
  }
  (amqpHeaders ??= {})[PACKED] = JSON.stringify(packed);
  options.headers = amqpHeaders;
  return { content: Buffer.from(message.body, 'utf8'), options };
}
