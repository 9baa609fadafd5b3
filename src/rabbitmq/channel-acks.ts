/**
 * Acks of one consumer channel, sent in bulk. An ack is queued and goes out at the end of the
 * event-loop turn: the longest run of acked deliveries from the oldest unsettled one is settled
 * by a single `basic.ack` with `multiple` set, and acks behind a delivery still in work go out
 * one by one. On a quorum queue every ack is a command in its Raft log, so one ack for a run of
 * 64 saves the broker most of its settling work (docs/rabbitmq.md has the numbers).
 *
 * `multiple` acks every unsettled delivery up to its tag, so this mirrors exactly which
 * deliveries the broker still holds for the channel: each one from delivery until its ack or
 * nack. Nacks (requeue, reject) are sent at once: a run never covers a delivery given back.
 */
import type { Channel, Message } from 'amqplib';

export class ChannelAcks {
  /** Deliveries the broker holds for this channel, by delivery tag, ascending; true once acked here. */
  private readonly unsettled = new Map<number, { message: Message; acked: boolean }>();
  /** The turn-end write of the acks queued so far, while one is due. */
  private flushing: Promise<void> | undefined;

  constructor(private readonly channel: Channel) {}

  delivered(message: Message): void {
    this.unsettled.set(message.fields.deliveryTag, { message, acked: false });
  }

  /**
   * Queues the ack; resolves once it is written at the end of this turn, so a caller that awaits
   * it (and then closes the channel) never strands an ack. Rejects when the channel closed before
   * that: the broker requeues the delivery, as for any ack that did not reach it.
   */
  ack(message: Message): Promise<void> {
    const entry = this.unsettled.get(message.fields.deliveryTag);
    if (entry) entry.acked = true;
    this.flushing ??= new Promise<void>((resolve, reject) =>
      setImmediate(() => {
        this.flushing = undefined;
        try {
          this.flush();
          resolve();
        } catch (error) {
          reject(error as Error);
        }
      }),
    );
    return this.flushing;
  }

  /** Gives the delivery back (requeue) or drops it (dead-letters it, if the queue has a target); throws when the channel is closed. */
  nack(message: Message, requeue: boolean): void {
    if (!this.unsettled.delete(message.fields.deliveryTag)) return;
    this.channel.nack(message, false, requeue);
  }

  private flush(): void {
    let runEnd: Message | undefined;
    let inRun = true;
    for (const [tag, entry] of this.unsettled) {
      if (!entry.acked) {
        inRun = false;
        continue;
      }
      this.unsettled.delete(tag);
      if (inRun) runEnd = entry.message;
      else this.channel.ack(entry.message);
    }
    if (runEnd) this.channel.ack(runEnd, true);
  }
}
