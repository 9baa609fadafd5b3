/**
 * The AMQP form of a message, in both wire formats: what goes into properties, what is packed
 * and where, and that reading gives back exactly what was sent. Pure encoding, no broker:
 * amqplib's own property codec is what the conformance suite exercises against the real broker.
 */
import type { ConsumeMessage } from 'amqplib';
import { describe, expect, it } from 'vitest';
import { buildMessage, DEFAULT_LIMITS } from '../../src/core/envelope.js';
import { Headers } from '../../src/core/headers.js';
import { makeIdentity } from '../../src/core/identity.js';
import type { TransportMessage } from '../../src/core/transport.js';
import { defineCommand, ErrorCodes, isSwitchyardError } from '../../src/index.js';
import { rabbitmqTransport } from '../../src/rabbitmq/index.js';
import { ENVELOPE_CONTENT_TYPE, fromAmqp, toAmqp, WIRE_FORMATS, type WireFormat } from '../../src/rabbitmq/wire.js';

const PlaceOrder = defineCommand<{ orderId: string }>('Sales.PlaceOrder');
const identity = makeIdentity('Sales', 'host-1', 42, 'a1b2c3');

function built(causedBy?: TransportMessage): TransportMessage {
  return buildMessage(
    PlaceOrder,
    { orderId: 'o-1' },
    { intent: 'send', identity, replyTo: 'Sales', causedBy: causedBy && { messageId: causedBy.id, headers: causedBy.headers } },
    DEFAULT_LIMITS,
  );
}

/** A delivery with this content and these properties, as amqplib hands it to a consumer. */
function deliveryOf(content: Buffer, properties: Record<string, unknown>): ConsumeMessage {
  return { content, fields: { deliveryTag: 1, redelivered: false, exchange: '', routingKey: 'Sales', consumerTag: 'c' }, properties } as unknown as ConsumeMessage;
}

/** What a consumer gets for a message published in `format` (the broker may add headers). */
function delivered(message: TransportMessage, format: WireFormat, brokerHeaders: Record<string, unknown> = {}): ConsumeMessage {
  const { content, options } = toAmqp(message, format);
  const { persistent, headers, ...properties } = options;
  expect(persistent).toBe(true);
  return deliveryOf(content, { headers: { ...headers, ...brokerHeaders }, ...properties });
}

/** The packed headers, wherever the format puts them. */
function packedOf(message: TransportMessage, format: WireFormat): Record<string, unknown> {
  const { content, options } = toAmqp(message, format);
  const text = format === 'envelope' ? content.toString('utf8') : (options.headers!['sy1-headers'] as string);
  return (format === 'envelope' ? (JSON.parse(text) as { headers: Record<string, unknown> }).headers : JSON.parse(text)) as Record<string, unknown>;
}

describe.each(WIRE_FORMATS)('RabbitMQ wire form: %s', (format) => {
  it('reads back exactly the message that was built and sent', () => {
    const first = built();
    const reply = built(first);
    for (const message of [first, reply]) expect(fromAmqp(delivered(message, format))).toEqual(message);
  });

  it('carries ids, reply-to and types as AMQP properties, not packed', () => {
    const message = built();
    expect(toAmqp(message, format).options).toMatchObject({
      messageId: message.id,
      correlationId: message.headers[Headers.CorrelationId],
      replyTo: 'Sales',
      type: 'Sales.PlaceOrder',
    });
    const packed = packedOf(message, format);
    for (const header of [Headers.MessageId, Headers.ConversationId, Headers.CorrelationId, Headers.ReplyTo, Headers.EnclosedTypes]) {
      expect(packed).not.toHaveProperty(header);
    }
    expect(packed[Headers.OriginatingEndpoint]).toBe('Sales');
  });

  it('packs a conversation id that differs from the message id', () => {
    const reply = built(built());
    expect(packedOf(reply, format)[Headers.ConversationId]).toBe(reply.headers[Headers.ConversationId]);
    expect(reply.headers[Headers.ConversationId]).not.toBe(reply.id);
  });

  it('reads back a message without the id headers, with values too long for a property, or with a body that is not JSON', () => {
    const bare: TransportMessage = { id: 'm-1', headers: { custom: 'yes', toString: 'a header named like a prototype member', body: '},"body":' }, body: '{}' };
    const longTypes: TransportMessage = { id: 'm-2', headers: { [Headers.MessageId]: 'm-2', [Headers.EnclosedTypes]: `${'A'.repeat(200)},${'B'.repeat(200)}` }, body: '{}' };
    const otherId: TransportMessage = { id: 'm-3', headers: { [Headers.MessageId]: 'something-else' }, body: '{}' };
    const notJson: TransportMessage = { id: 'm-4', headers: { [Headers.MessageId]: 'm-4' }, body: 'not json },"body": {' };
    for (const message of [bare, longTypes, otherId, notJson]) expect(fromAmqp(delivered(message, format))).toEqual(message);
  });

  it('keeps bookkeeping headers as AMQP headers and leaves out what the broker adds', () => {
    const message: TransportMessage = { id: 'm-1', headers: { [Headers.MessageId]: 'm-1', 'x-sy-delivery-base': '2' }, body: '{}' };
    expect(toAmqp(message, format).options.headers).toHaveProperty('x-sy-delivery-base', '2');
    const read = fromAmqp(delivered(message, format, { 'x-delivery-count': 3, 'x-death': [], 'x-first-death-queue': 'q' }));
    expect(read.headers).toEqual({ [Headers.MessageId]: 'm-1' });
  });
});

describe('RabbitMQ wire formats', () => {
  it('envelope: the body holds the headers and the message JSON, and there is no AMQP header table', () => {
    const message = built();
    const { content, options } = toAmqp(message, 'envelope');
    expect(options.contentType).toBe(ENVELOPE_CONTENT_TYPE);
    expect(options.headers).toBeUndefined();
    const envelope = JSON.parse(content.toString('utf8')) as { headers: Record<string, string>; body: unknown };
    expect(envelope.body).toEqual({ orderId: 'o-1' });
    expect(envelope.headers[Headers.ContentType]).toBe('application/json');
  });

  it('headers: the body is the message JSON alone, with its content type as the AMQP one', () => {
    const message = built();
    const { content, options } = toAmqp(message, 'headers');
    expect(content.toString('utf8')).toBe(message.body);
    expect(options.contentType).toBe('application/json');
    expect(Object.keys(options.headers!)).toEqual(['sy1-headers']);
  });

  it('an envelope that cannot be read keeps its whole text as the body and loses its type (so it goes to the error queue as it came)', () => {
    for (const text of ['{"headers":{"a":"b"}', '{"headers":[1],"body":{}}', '{"headers":{"x":1,"body":{}}', 'plain text']) {
      const read = fromAmqp(deliveryOf(Buffer.from(text), { messageId: 'm-1', contentType: ENVELOPE_CONTENT_TYPE, type: 'Sales.PlaceOrder' }));
      expect(read.body).toBe(text);
      expect(read.headers).not.toHaveProperty(Headers.EnclosedTypes);
    }
  });

  it('reads the earlier form that packed every header, and plain string headers from other tools', () => {
    const earlier = built();
    const old = deliveryOf(Buffer.from(earlier.body), { messageId: earlier.id, contentType: 'application/json', headers: { 'sy1-headers': JSON.stringify(earlier.headers) } });
    expect(fromAmqp(old)).toEqual(earlier);
    const foreign = deliveryOf(Buffer.from('{}'), { messageId: 'ext-1', headers: { 'sy1-enclosed-types': 'Sales.PlaceOrder', count: 3 } });
    expect(fromAmqp(foreign)).toEqual({ id: 'ext-1', headers: { 'sy1-enclosed-types': 'Sales.PlaceOrder' }, body: '{}' });
  });

  it('headers: the header table holds less than half of what packing every header took', () => {
    // The broker's and amqplib's work per message grows with the header table (docs/rabbitmq.md).
    const message = built();
    expect((toAmqp(message, 'headers').options.headers!['sy1-headers'] as string).length).toBeLessThan(JSON.stringify(message.headers).length / 2);
  });

  it('refuses an unknown wire format at configuration, naming the choices', () => {
    const create = () => rabbitmqTransport({ url: 'amqp://127.0.0.1', wireFormat: 'xml' as WireFormat });
    expect(create).toThrow(/`wireFormat` is "xml".*'envelope'.*'headers'/s);
    try {
      create();
    } catch (error) {
      expect(isSwitchyardError(error, ErrorCodes.CONFIG)).toBe(true);
    }
  });
});
