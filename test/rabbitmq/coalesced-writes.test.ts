/**
 * A burst of frames written in one turn reaches the socket as one write, on the amqplib this
 * package installs (if a later amqplib moves its socket, the first assertion says so).
 */
import type { Socket } from 'node:net';
import amqp from 'amqplib';
import { expect, it } from 'vitest';
import { coalesceSocketWrites } from '../../src/rabbitmq/coalesced-writes.js';
import { deleteTopology, describeOnBroker, rabbit, uniquePrefix } from './fixtures/broker.js';

/** Socket writes (syscalls) made while 50 messages are published in one turn. */
async function writesForBurst(coalesce: boolean): Promise<number> {
  const queue = `${uniquePrefix('writes')}q`;
  const model = await amqp.connect(rabbit.url, { noDelay: true });
  try {
    if (coalesce) expect(coalesceSocketWrites(model)).toBe(true);
    const channel = await model.createConfirmChannel();
    await channel.assertQueue(queue, { durable: true });
    const socket = (model as unknown as { connection: { stream: Socket & { _write: Function; _writev: Function } } }).connection.stream;
    let writes = 0;
    for (const method of ['_write', '_writev'] as const) {
      const original = socket[method];
      socket[method] = function (this: Socket, ...args: unknown[]) {
        writes += 1;
        return original.apply(this, args);
      };
    }
    for (let n = 0; n < 50; n++) channel.sendToQueue(queue, Buffer.from(`{"n":${n}}`), { persistent: true });
    await channel.waitForConfirms();
    return writes;
  } finally {
    await model.close();
    await deleteTopology({ queues: [queue] });
  }
}

describeOnBroker('rabbitmq coalesced writes', () => {
  it('writes a burst of 50 publishes as one socket write instead of one each', async () => {
    expect(await writesForBurst(false)).toBeGreaterThanOrEqual(50);
    expect(await writesForBurst(true)).toBeLessThanOrEqual(2);
  });
});
