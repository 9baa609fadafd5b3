/**
 * The AMQP form of a message: what goes into properties, what is packed, and that reading gives
 * back exactly what was sent. Pure encoding, no broker: amqplib's own property codec is what the
 * conformance suite exercises against the real broker.
 */
import type { ConsumeMessage, Options } from 'amqplib';
import { describe, expect, it } from 'vitest';
import { buildMessage, DEFAULT_LIMITS } from '../../src/core/envelope.js';
import { Headers } from '../../src/core/headers.js';
import { makeIdentity } from '../../src/core/identity.js';
import type { TransportMessage } from '../../src/core/transport.js';
import { defineCommand } from '../../src/index.js';
import { fromAmqp, publishOptions } from '../../src/rabbitmq/wire.js';

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

/** What a consumer gets for a message published with `options`: amqplib decodes every property. */
function delivered(message: TransportMessage, brokerHeaders: Record<string, unknown> = {}): ConsumeMessage {
  const { persistent, headers, ...properties } = publishOptions(message) as Options.Publish & { headers: Record<string, unknown> };
  expect(persistent).toBe(true);
  return {
    content: Buffer.from(message.body, 'utf8'),
    fields: { deliveryTag: 1, redelivered: false, exchange: '', routingKey: 'Sales', consumerTag: 'c' },
    properties: { headers: { ...headers, ...brokerHeaders }, ...properties },
  } as unknown as ConsumeMessage;
}

const packedOf = (message: TransportMessage) => JSON.parse(publishOptions(message).headers!['sy1-headers'] as string) as Record<string, unknown>;

describe('RabbitMQ wire form', () => {
  it('reads back exactly the message that was built and sent', () => {
    const first = built();
    const reply = built(first);
    for (const message of [first, reply]) expect(fromAmqp(delivered(message))).toEqual(message);
  });

  it('carries ids, reply-to, content type and types as AMQP properties, not packed', () => {
    const message = built();
    const options = publishOptions(message);
    expect(options).toMatchObject({
      messageId: message.id,
      correlationId: message.headers[Headers.CorrelationId],
      replyTo: 'Sales',
      type: 'Sales.PlaceOrder',
      contentType: 'application/json',
    });
    const packed = packedOf(message);
    for (const header of [Headers.MessageId, Headers.ConversationId, Headers.CorrelationId, Headers.ReplyTo, Headers.EnclosedTypes, Headers.ContentType]) {
      expect(packed).not.toHaveProperty(header);
    }
    expect(packed[Headers.OriginatingEndpoint]).toBe('Sales');
  });

  it('packs a conversation id that differs from the message id', () => {
    const reply = built(built());
    expect(packedOf(reply)[Headers.ConversationId]).toBe(reply.headers[Headers.ConversationId]);
    expect(reply.headers[Headers.ConversationId]).not.toBe(reply.id);
  });

  it('reads back a message without the id headers, or with values too long for a property', () => {
    const bare: TransportMessage = { id: 'm-1', headers: { custom: 'yes', toString: 'a header named like a prototype member' }, body: '{}' };
    const longTypes: TransportMessage = { id: 'm-2', headers: { [Headers.MessageId]: 'm-2', [Headers.EnclosedTypes]: `${'A'.repeat(200)},${'B'.repeat(200)}` }, body: '{}' };
    const otherId: TransportMessage = { id: 'm-3', headers: { [Headers.MessageId]: 'something-else' }, body: '{}' };
    for (const message of [bare, longTypes, otherId]) expect(fromAmqp(delivered(message))).toEqual(message);
  });

  it('keeps bookkeeping headers as AMQP headers and leaves out what the broker adds', () => {
    const message: TransportMessage = { id: 'm-1', headers: { [Headers.MessageId]: 'm-1', 'x-sy-delivery-base': '2' }, body: '{}' };
    expect(publishOptions(message).headers).toHaveProperty('x-sy-delivery-base', '2');
    const read = fromAmqp(delivered(message, { 'x-delivery-count': 3, 'x-death': [], 'x-first-death-queue': 'q' }));
    expect(read.headers).toEqual({ [Headers.MessageId]: 'm-1' });
  });

  it('reads the earlier form that packed every header, and plain string headers from other tools', () => {
    const earlier = built();
    const old = {
      content: Buffer.from(earlier.body),
      fields: { deliveryTag: 1, redelivered: false },
      properties: { messageId: earlier.id, contentType: 'application/json', headers: { 'sy1-headers': JSON.stringify(earlier.headers) } },
    } as unknown as ConsumeMessage;
    expect(fromAmqp(old)).toEqual(earlier);
    const foreign = { content: Buffer.from('{}'), fields: {}, properties: { messageId: 'ext-1', headers: { 'sy1-enclosed-types': 'Sales.PlaceOrder', count: 3 } } } as unknown as ConsumeMessage;
    expect(fromAmqp(foreign)).toEqual({ id: 'ext-1', headers: { 'sy1-enclosed-types': 'Sales.PlaceOrder' }, body: '{}' });
  });

  it('packs less than half of what packing every header took', () => {
    // The broker's work per message grows with the header table (docs/rabbitmq.md).
    const message = built();
    const packedLength = (publishOptions(message).headers!['sy1-headers'] as string).length;
    expect(packedLength).toBeLessThan(JSON.stringify(message.headers).length / 2);
  });
});
