/**
 * In-process transport for unit tests and examples. Same semantics as the durable transports
 * (leases with fencing tokens, delayed delivery, competing consumers, atomic complete) but
 * nothing survives the process. Several endpoints share one `MemoryBroker`.
 */
import type { Address } from '../core/identity.js';
import type { Clock } from '../core/clock.js';
import { systemClock } from '../core/clock.js';
import { isTopicOutgoing } from '../core/transport.js';
import type {
  Outgoing,
  QueueAdmin,
  Receipt,
  ReceiveOptions,
  Transport,
  TransportMessage,
} from '../core/transport.js';
import { LeaseKeeper, leaseLost, queueNotFound, topicsUnsupported, waitForWake } from '../core/leases.js';
import { decodeStoredMessage, type StoredMessage as StoredRaw } from '../core/wire-headers.js';

interface StoredMessage {
  seq: number;
  message: TransportMessage;
  visibleAt: number;
  token: number;
  deliveryCount: number;
}

/** The queues several in-process endpoints share. */
export class MemoryBroker {
  readonly queues = new Map<Address, StoredMessage[]>();
  private readonly wakers = new Map<Address, Set<() => void>>();
  private seq = 0;

  constructor(readonly clock: Clock = systemClock) {}

  ensure(address: Address): StoredMessage[] {
    let q = this.queues.get(address);
    if (!q) this.queues.set(address, (q = []));
    return q;
  }

  queue(address: Address): StoredMessage[] {
    const q = this.queues.get(address);
    if (!q) {
      throw queueNotFound('memory', address);
    }
    return q;
  }

  /** `deliveryCounts[i]`: deliveries message i already had (a move keeps them; new sends have none). */
  enqueue(batch: readonly Outgoing[], deliveryCounts?: readonly number[]): void {
    // Check every destination first so a batch is all-or-nothing.
    const targets = batch.map((o) => {
      if (isTopicOutgoing(o)) {
        throw topicsUnsupported('memory');
      }
      return this.queue(o.destination);
    });
    const now = this.clock.now();
    batch.forEach((o, i) => {
      targets[i]!.push({ seq: ++this.seq, message: o.message, visibleAt: o.deliverAt ?? now, token: 0, deliveryCount: deliveryCounts?.[i] ?? 0 });
    });
    for (const o of batch) if (!isTopicOutgoing(o)) this.wake(o.destination);
  }

  /**
   * Stores a message as another tool or a bug might have written it: id, headers (JSON text or
   * anything else) and body unchecked. It is read the way a durable transport reads its rows
   * (src/core/wire-headers.ts), so what cannot be read as sent arrives marked, and the endpoint
   * moves it to the error queue. For tests of hostile input.
   */
  injectRaw(address: Address, stored: StoredRaw): void {
    const seq = ++this.seq;
    const message = decodeStoredMessage(stored, `row-${seq}`);
    this.queue(address).push({ seq, message, visibleAt: this.clock.now(), token: 0, deliveryCount: 0 });
    this.wake(address);
  }

  wake(address: Address): void {
    for (const fn of this.wakers.get(address) ?? []) fn();
  }

  onWake(address: Address, fn: () => void): () => void {
    let set = this.wakers.get(address);
    if (!set) this.wakers.set(address, (set = new Set()));
    set.add(fn);
    return () => set!.delete(fn);
  }

  /** Earliest time a message in the queue becomes visible, or undefined when empty. */
  nextVisible(address: Address): number | undefined {
    let min: number | undefined;
    for (const m of this.queues.get(address) ?? []) if (min === undefined || m.visibleAt < min) min = m.visibleAt;
    return min;
  }
}

/** Finds a stored message by seq; `stored` undefined when it is gone. */
function find(broker: MemoryBroker, address: Address, seq: number) {
  const q = broker.queues.get(address);
  const index = q ? q.findIndex((m) => m.seq === seq) : -1;
  return { q, index, stored: index >= 0 ? q![index] : undefined };
}

/** Leases `stored` for `leaseMs` and gives its receipt: settlements fenced by the token taken now. */
function memoryReceipt(broker: MemoryBroker, leases: LeaseKeeper, address: Address, stored: StoredMessage, leaseMs: number): Receipt {
  const { clock } = broker;
  stored.visibleAt = clock.now() + leaseMs;
  stored.token += 1;
  stored.deliveryCount += 1;
  const { seq, token } = stored;
  const held = () => {
    const { stored: s } = find(broker, address, seq);
    return s !== undefined && s.token === token ? s : undefined;
  };
  const lease = leases.hold(() => {
    const s = held();
    if (s) s.visibleAt = clock.now() + leaseMs;
    return s !== undefined;
  });
  return {
    message: stored.message,
    address,
    deliveryCount: stored.deliveryCount,
    get signal() {
      return lease.signal;
    },
    async complete(outgoing: readonly Outgoing[] = []) {
      lease.release();
      const { q: queue, index, stored: s } = find(broker, address, seq);
      if (!s || s.token !== token) throw leaseLost(address, stored.message.id);
      broker.enqueue(outgoing); // throws before removal when a destination is missing
      queue!.splice(index, 1);
    },
    async abandon(delayMs = 0) {
      lease.release();
      const s = held();
      if (!s) return;
      s.visibleAt = clock.now() + delayMs;
      s.token += 1;
      broker.wake(address);
    },
  };
}

function memoryQueueAdmin(broker: MemoryBroker): QueueAdmin {
  const { clock } = broker;
  return {
    async depth(address) {
      return broker.queues.get(address)?.length ?? 0;
    },
    async queues() {
      return [...broker.queues.keys()];
    },
    async peek(address, { offset, limit }) {
      return [...broker.queue(address)].sort((a, b) => a.seq - b.seq).slice(offset, offset + limit).map((m) => m.message);
    },
    async schedule(address) {
      return [...broker.queue(address)].sort((a, b) => a.seq - b.seq).map((m) => ({ message: m.message, visibleAt: m.visibleAt }));
    },
    async take(address, ids, replacements) {
      const q = broker.queue(address);
      const wanted = new Set(ids);
      const taken = q.filter((m) => wanted.has(m.message.id));
      broker.enqueue(replacements ? taken.flatMap((m) => replacements(m.message)) : []);
      for (const m of taken) q.splice(q.indexOf(m), 1);
      return taken.map((m) => m.message.id);
    },
    async moveAll(from, to, moveOptions = {}) {
      const source = broker.queue(from);
      const now = clock.now();
      const moving = source.filter((m) => moveOptions.includeLeased || m.visibleAt <= now || m.token === 0);
      broker.enqueue(
        moving.map((m) => ({ destination: to, message: m.message })),
        moving.map((m) => m.deliveryCount),
      );
      for (const m of moving) source.splice(source.indexOf(m), 1);
      return moving.length;
    },
  };
}


export interface MemoryTransportOptions {
  broker?: MemoryBroker;
  /** How long a receipt is held before the message is given to another consumer. */
  leaseMs?: number;
}

export function memoryTransport(options: MemoryTransportOptions = {}): Transport {
  const broker = options.broker ?? new MemoryBroker();
  const leaseMs = options.leaseMs ?? 30_000;
  const clock = broker.clock;
  const leases = new LeaseKeeper(leaseMs / 3);
  let closed = false;

  const claim = (address: Address, max: number): Receipt[] => {
    const now = clock.now();
    const ready = broker.queue(address).filter((m) => m.visibleAt <= now).sort((a, b) => a.visibleAt - b.visibleAt || a.seq - b.seq);
    return ready.slice(0, max).map((stored) => memoryReceipt(broker, leases, address, stored, leaseMs));
  };

  return {
    name: 'memory',
    capabilities: { delayedDelivery: true, nativePubSub: false, atomicSendWithReceive: true, competingConsumers: true, exactDeliveryCount: true },
    admin: memoryQueueAdmin(broker),
    async open() {},
    async createQueue(address) {
      broker.ensure(address);
    },
    async queueExists(address) {
      return broker.queues.has(address);
    },
    async dispatch(batch) {
      broker.enqueue(batch);
    },
    async receive(address: Address, { max, waitMs, signal }: ReceiveOptions) {
      if (closed) return [];
      const got = claim(address, max);
      if (got.length > 0 || waitMs <= 0) return got;
      const next = broker.nextVisible(address);
      const until = next === undefined ? waitMs : Math.max(0, Math.min(waitMs, next - clock.now()));
      await waitForWake((wake) => broker.onWake(address, wake), until, signal);
      return closed ? [] : claim(address, max);
    },
    async close() {
      closed = true;
      leases.close();
    },
  };
}
