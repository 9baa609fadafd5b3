/**
 * Transport messages on AMQP. The body is the UTF-8 JSON text, always persistent (delivery mode 2).
 * Headers with an AMQP property of the same meaning travel in it: message id, correlation id,
 * reply-to, content type, and the enclosed types as `type`. The rest are packed as one JSON string
 * in the AMQP header `sy1-headers`, except the message id header and a conversation id equal to
 * the message id (a message that starts its conversation): restored on reading.
 *
 * Why: the broker's cost per message grows with the size of the header table, and amqplib's
 * table encoding costs more than one string. Raw amqplib with a 700-byte header drops from about
 * 10,000 to 8,000 msgs/s here; the dozen `sy1-*` headers as table entries cost about a fifth of the
 * bus's throughput (docs/rabbitmq.md).
 *
 * Read: properties, the packed string and plain string AMQP headers (from other tools, and the
 * earlier form that packed every header). Headers the broker adds (x-death, x-delivery-count, ...)
 * and the transport's own bookkeeping headers (`x-sy-*`, kept as separate AMQP headers) are not
 * part of the message.
 */
import type { ConsumeMessage, GetMessage, MessageProperties, Options } from 'amqplib';
import { utf8BytesAtMost } from '../core/envelope.js';
import { Headers } from '../core/headers.js';
import type { TransportMessage } from '../core/transport.js';

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
const PROPERTY_HEADERS = Object.keys(AS_PROPERTY) as PropertyHeader[];

function copyStrings(from: Record<string, unknown>, into: Record<string, string>): void {
  for (const key of Object.keys(from)) {
    const value = from[key];
    if (typeof value === 'string' && key !== '__proto__' && key !== PACKED && !(key.startsWith('x-') && BROKER_HEADERS.test(key))) into[key] = value;
  }
}

const isBookkeeping = (key: string) => key.startsWith('x-sy-');

/** Left out of the packed headers when equal to the message id (most messages); `null` there when not set at all. */
const SAME_AS_ID: readonly string[] = [Headers.MessageId, Headers.ConversationId];

export function fromAmqp(raw: ConsumeMessage | GetMessage): TransportMessage {
  const properties = raw.properties;
  const amqpHeaders = (properties.headers ?? {}) as Record<string, unknown>;
  const headers: Record<string, string> = {};
  copyStrings(amqpHeaders, headers);
  let packed: Record<string, unknown> | undefined;
  if (typeof amqpHeaders[PACKED] === 'string') {
    try {
      const parsed: unknown = JSON.parse(amqpHeaders[PACKED]);
      if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) copyStrings((packed = parsed as Record<string, unknown>), headers);
    } catch {
      // Untrusted input: unreadable headers are left out; the endpoint then sends the message to the error queue.
    }
  }
  for (const header of PROPERTY_HEADERS) {
    const value: unknown = properties[AS_PROPERTY[header]];
    if (typeof value === 'string') headers[header] = value;
  }
  const id = typeof properties.messageId === 'string' ? properties.messageId : (headers[Headers.MessageId] ?? '');
  if (packed && id) for (const header of SAME_AS_ID) if (!(header in packed)) headers[header] = id;
  return { id, headers, body: raw.content.toString('utf8') };
}

export function publishOptions(message: TransportMessage): Options.Publish {
  const options: Options.Publish = { persistent: true, messageId: message.id };
  const amqpHeaders: Record<string, string> = {};
  const packed: Record<string, string | null> = {};
  const { headers } = message;
  for (const header of SAME_AS_ID) if (headers[header] === undefined) packed[header] = null;
  for (const key in headers) {
    const value = headers[key]!;
    if (SAME_AS_ID.includes(key) && value === message.id) continue;
    if (Object.hasOwn(AS_PROPERTY, key) && utf8BytesAtMost(value, SHORT_STRING_BYTES)) options[AS_PROPERTY[key as PropertyHeader]] = value;
    else if (isBookkeeping(key)) amqpHeaders[key] = value;
    else packed[key] = value;
  }
  amqpHeaders[PACKED] = JSON.stringify(packed);
  options.headers = amqpHeaders;
  return options;
}
