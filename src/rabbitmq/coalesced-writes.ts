/**
 * amqplib hands the socket one chunk per frame (a publish, an ack, a heartbeat), and each
 * becomes a syscall of its own and a TCP segment the broker reads on its own. Corking the socket
 * from a turn's first write to the end of that turn sends everything the turn wrote in one
 * writev: the bus settles and publishes in bursts, so a burst of 64 acks is one write instead
 * of 64. Measured on rabbitmq.send: about 15% more messages per second, and less broker CPU per
 * message (docs/rabbitmq.md).
 *
 * The socket is amqplib's `connection.stream`, a field its documentation does not promise. When
 * it is not there (a later amqplib), writes are not coalesced and nothing else changes.
 */
import type { ChannelModel } from 'amqplib';
import type { Writable } from 'node:stream';

/** Returns false when the socket could not be found (writes then go out one by one, as amqplib does). */
export function coalesceSocketWrites(model: ChannelModel): boolean {
  const socket = (model as unknown as { connection?: { stream?: unknown } }).connection?.stream;
  if (!isWritable(socket)) return false;
  const write = socket.write;
  let corked = false;
  const uncork = () => {
    corked = false;
    socket.uncork();
  };
  socket.write = function coalescedWrite(this: Writable, ...args: Parameters<Writable['write']>) {
    if (!corked) {
      corked = true;
      socket.cork();
      process.nextTick(uncork);
    }
    return write.apply(this, args);
  } as Writable['write'];
  return true;
}

function isWritable(value: unknown): value is Writable {
  const candidate = value as Partial<Writable> | undefined;
  return typeof candidate?.write === 'function' && typeof candidate.cork === 'function' && typeof candidate.uncork === 'function';
}
