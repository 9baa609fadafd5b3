/**
 * Bulk acks against the real broker: one `multiple` ack settles a run of acked deliveries, a
 * delivery given back in the middle of the run is not taken with it, and what was not acked is
 * still in the queue when the channel closes.
 */
import amqp, { type ConsumeMessage } from 'amqplib';
import { expect, it } from 'vitest';
import { ChannelAcks } from '../../src/rabbitmq/channel-acks.js';
import { waitFor } from '../../src/testing/wait.js';
import { deleteTopology, describeOnBroker, rabbit, uniquePrefix } from './fixtures/broker.js';

describeOnBroker('rabbitmq channel acks', () => {
  it('settles a run of acks with one multiple ack, skips a requeued delivery, leaves the unacked in the queue', async () => {
    const queue = `${uniquePrefix('acks')}q`;
    const connection = await amqp.connect(rabbit.url);
    try {
      const publisher = await connection.createConfirmChannel();
      await publisher.assertQueue(queue, { durable: true, arguments: { 'x-queue-type': 'quorum' } });
      for (let n = 1; n <= 10; n++) publisher.sendToQueue(queue, Buffer.from('{}'), { messageId: `m${n}`, persistent: true });
      await publisher.waitForConfirms();

      const channel = await connection.createChannel();
      await channel.prefetch(10);
      const acks = new ChannelAcks(channel);
      const deliveries: ConsumeMessage[] = [];
      await channel.consume(queue, (m) => {
        if (!m) return;
        acks.delivered(m);
        deliveries.push(m);
      });
      await waitFor(() => deliveries.length === 10);
      const sent: [string, boolean][] = [];
      const ack = channel.ack.bind(channel);
      channel.ack = (m, multiple) => (sent.push([m.properties.messageId as string, multiple ?? false]), ack(m, multiple));
      const byId = (id: string) => deliveries.find((d) => d.properties.messageId === id)!;

      acks.nack(byId('m5'), true); // given back: redelivered with a new tag, to this channel
      await waitFor(() => deliveries.length === 11);
      await Promise.all(['m1', 'm2', 'm3', 'm4', 'm6', 'm8'].map((id) => acks.ack(byId(id))));

      // m1-m6 are one run (m5 was settled by its nack); m7 is still in work, so m8 goes alone.
      expect(sent).toEqual([
        ['m8', false],
        ['m6', true],
      ]);
      await channel.close();
      const left = await connection.createChannel();
      const ids: string[] = [];
      for (let got = await left.get(queue, { noAck: true }); got; got = await left.get(queue, { noAck: true })) ids.push(got.properties.messageId as string);
      expect(ids.sort()).toEqual(['m10', 'm5', 'm7', 'm9']);
    } finally {
      await connection.close();
      await deleteTopology({ queues: [queue] });
    }
  });
});
