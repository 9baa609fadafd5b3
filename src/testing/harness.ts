/**
 * A test harness for users' handlers: several endpoints on one in-memory broker, the real
 * pipeline (routing, headers, retries, error queue), and a record of what was sent, handled and
 * failed. No infrastructure needed.
 *
 *   const bus = testBus([{ name: 'Sales', handlers: [...] }, { name: 'Billing', handlers: [...] }]);
 *   await bus.start();
 *   await bus.endpoint('Sales').sendLocal(PlaceOrder, { orderId: 'o-1', amount: 3 });
 *   await bus.runUntilIdle();
 *   expect(bus.dispatched('Billing.ChargeCard')).toHaveLength(1);
 *   await bus.stop();   // throws if a message reached an error queue, unless allowErrors was set
 */
import { silentLogger } from '../core/logger.js';
import { Headers } from '../core/headers.js';
import type { Outgoing, Transport, TransportMessage } from '../core/transport.js';
import { isTopicOutgoing } from '../core/transport.js';
import { createEndpoint, type Endpoint, type EndpointOptions } from '../endpoint/endpoint.js';
import { MemoryBroker, memoryTransport } from '../memory/transport.js';
import { waitFor } from './wait.js';

export interface DispatchedMessage {
  readonly destination: string;
  readonly type: string;
  readonly body: unknown;
  readonly headers: Readonly<Record<string, string>>;
}

export interface TestBus {
  start(): Promise<void>;
  stop(): Promise<void>;
  endpoint(name: string): Endpoint;
  /** Every message sent by any endpoint, in order; filtered by type name when given. */
  dispatched(typeName?: string): DispatchedMessage[];
  /** Messages waiting in error queues. */
  failed(): TransportMessage[];
  /** Waits until no queue holds a message that is due or in flight (error queues excepted). */
  runUntilIdle(options?: { timeoutMs?: number }): Promise<void>;
}

export type TestEndpointOptions = Omit<EndpointOptions, 'transport'>;

function recording(transport: Transport, log: DispatchedMessage[]): Transport {
  const record = (batch: readonly Outgoing[]) => {
    for (const o of batch) {
      log.push({
        destination: isTopicOutgoing(o) ? `topic:${o.topic}` : o.destination,
        type: o.message.headers[Headers.EnclosedTypes]?.split(',')[0] ?? '',
        body: JSON.parse(o.message.body) as unknown,
        headers: o.message.headers,
      });
    }
  };
  return {
    ...transport,
    async dispatch(batch) {
      await transport.dispatch(batch);
      record(batch);
    },
    async receive(address, options) {
      const receipts = await transport.receive(address, options);
      return receipts.map((receipt) => ({
        ...receipt,
        async complete(outgoing = []) {
          await receipt.complete(outgoing);
          // Retries and error-queue copies keep the message's id: they are not the handler's sends.
          record(outgoing.filter((o) => o.message.id !== receipt.message.id));
        },
      }));
    },
  };
}

export function testBus(endpoints: readonly TestEndpointOptions[], options: { allowErrors?: boolean } = {}): TestBus {
  const broker = new MemoryBroker();
  const log: DispatchedMessage[] = [];
  const errorQueues = new Set(endpoints.map((e) => e.recoverability?.errorQueue ?? 'error'));
  const byName = new Map<string, Endpoint>();
  for (const e of endpoints) {
    byName.set(e.name, createEndpoint({ logger: silentLogger, ...e, transport: recording(memoryTransport({ broker }), log) }));
  }
  const failed = () => [...errorQueues].flatMap((q) => (broker.queues.get(q) ?? []).map((m) => m.message));
  const busy = () => {
    for (const [address, queue] of broker.queues) {
      if (!errorQueues.has(address) && queue.length > 0) return true;
    }
    return false;
  };
  return {
    async start() {
      for (const e of byName.values()) await e.start();
    },
    async stop() {
      for (const e of [...byName.values()].reverse()) await e.stop();
      const errors = failed();
      if (errors.length > 0 && !options.allowErrors) {
        const first = errors[0]!.headers;
        throw new Error(
          `${errors.length} message(s) reached an error queue; the first: ${first['sy1-failure-exception-type']}: ${first['sy1-failure-exception-message']}. ` +
            'Pass { allowErrors: true } to testBus() when a test expects failures.',
        );
      }
    },
    endpoint(name) {
      const e = byName.get(name);
      if (!e) throw new Error(`No endpoint named ${name} in this test bus; it has ${[...byName.keys()].join(', ')}.`);
      return e;
    },
    dispatched(typeName) {
      return typeName === undefined ? [...log] : log.filter((m) => m.type === typeName);
    },
    failed,
    async runUntilIdle({ timeoutMs = 10_000 } = {}) {
      // Idle twice in a row, a tick apart, so a message sent by the last handler is seen.
      await waitFor(async () => {
        if (busy()) return false;
        await new Promise((resolve) => setImmediate(resolve));
        return !busy();
      }, { timeoutMs, what: 'the test bus to become idle' });
    },
  };
}
