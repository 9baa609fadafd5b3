/**
 * The pump's slot accounting with a fake transport (core logic only): a message holds a slot
 * while its handlers run; its settlement overlaps the next handlers, bounded to `concurrency`
 * more messages; stop waits for settlements.
 */
import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/index.js';
import { Pump, type PumpOptions } from '../../src/core/pump.js';
import type { Receipt, Transport } from '../../src/core/transport.js';
import { waitFor } from '../../src/testing/wait.js';

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

/** A queue of `count` messages whose completions all wait for `settlements.promise`. */
function fakeTransport(
  count: number,
  settlements: Promise<void>,
): { transport: Transport; received: () => number; asks: number[]; abandoned: string[] } {
  let next = 0;
  const asks: number[] = [];
  const abandoned: string[] = [];
  const receipt = (n: number): Receipt => ({
    message: { id: String(n), headers: {}, body: '{}' },
    address: 'Q',
    deliveryCount: 1,
    signal: new AbortController().signal,
    complete: () => settlements,
    abandon: async () => void abandoned.push(String(n)),
  });
  const transport = {
    name: 'fake',
    capabilities: { delayedDelivery: false, nativePubSub: false, atomicSendWithReceive: true, competingConsumers: true, exactDeliveryCount: true },
    admin: undefined,
    async receive(_address: string, { max, signal }: { max: number; signal: AbortSignal }) {
      asks.push(max);
      const take = Math.min(max, count - next);
      if (take === 0) {
        await new Promise((resolve) => (signal.aborted ? resolve(undefined) : signal.addEventListener('abort', resolve, { once: true })));
        return [];
      }
      return Array.from({ length: take }, () => receipt(next++));
    },
  } as unknown as Transport;
  return { transport, received: () => next, asks, abandoned };
}

/** A process step that records each message id, waits for `pause`, releases its slot and settles. */
function recordAndSettle(ids: string[], pause: () => Promise<unknown>): PumpOptions['process'] {
  return async (receipt, _stop, release) => {
    ids.push(receipt.message.id);
    await pause();
    release();
    await receipt.complete();
  };
}

/** A started pump on queue Q of `transport`. */
function startPump(transport: Transport, options: Pick<PumpOptions, 'concurrency' | 'prefetch' | 'process'>): Pump {
  const pump = new Pump({ transport, addresses: ['Q'], logger: silentLogger, ...options });
  pump.start();
  return pump;
}

describe('pump', () => {
  it('runs at most `concurrency` handlers, overlaps settlements with the next handlers, and bounds them', async () => {
    const settlements = deferred();
    const { transport, received } = fakeTransport(20, settlements.promise);
    let running = 0;
    let maxRunning = 0;
    let handled = 0;
    const pump = startPump(transport, {
      concurrency: 3,
      async process(receipt, _stop, release) {
        running += 1;
        maxRunning = Math.max(maxRunning, running);
        await new Promise((resolve) => setTimeout(resolve, 2));
        running -= 1;
        handled += 1;
        release();
        await receipt.complete();
      },
    });
    // Settlements are stuck: 3 handled and settling, 3 more handled, then receiving stops.
    await waitFor(() => handled === 6, { what: 'six handlers done while settlements wait' });
    await new Promise((resolve) => setTimeout(resolve, 30));
    expect(received()).toBe(6);
    expect(pump.active).toBe(6);

    settlements.resolve();
    await waitFor(() => handled === 20, { what: 'all twenty handled' });
    expect(maxRunning).toBe(3);
    await pump.stop();
    expect(pump.active).toBe(0);
  });

  it('frees the slot when the process finishes without releasing it', async () => {
    const { transport } = fakeTransport(5, Promise.resolve());
    let handled = 0;
    const pump = startPump(transport, {
      concurrency: 1,
      async process(receipt) {
        handled += 1;
        await receipt.complete();
      },
    });
    await waitFor(() => handled === 5, { what: 'all five handled one at a time' });
    await pump.stop();
  });

  it('waits for settlements in flight when it stops', async () => {
    const settlements = deferred();
    const { transport } = fakeTransport(2, settlements.promise);
    let settled = 0;
    const pump = startPump(transport, {
      concurrency: 2,
      async process(receipt, _stop, release) {
        release();
        await receipt.complete();
        settled += 1;
      },
    });
    await waitFor(() => pump.active === 2, { what: 'two messages settling' });
    let stopped = false;
    const stopping = pump.stop().then(() => (stopped = true));
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(stopped).toBe(false);
    settlements.resolve();
    await stopping;
    expect(settled).toBe(2);
  });

  it('with prefetch, receives ahead and starts held messages without another receive', async () => {
    // Three messages; every receive after the first finds the queue empty and waits.
    const { transport, asks } = fakeTransport(3, Promise.resolve());
    const order: string[] = [];
    const pump = startPump(transport, {
      concurrency: 1,
      prefetch: 2,
      process: recordAndSettle(order, () => new Promise((resolve) => setTimeout(resolve, 2))),
    });
    await waitFor(() => order.length === 3, { what: 'three handled' });
    await pump.stop();
    expect(order).toEqual(['0', '1', '2']);
    // One free slot plus two ahead: the first receive brought all three.
    expect(asks[0]).toBe(3);
  });

  it('starts a held message when a settlement frees room, while a receive is still waiting', async () => {
    // Concurrency 1 allows one more message settling: after two handlers, two held messages wait
    // for settlements while the receive loop waits on the empty queue (here: forever).
    const settlements = deferred();
    const { transport, asks } = fakeTransport(4, settlements.promise);
    const started: string[] = [];
    const pump = startPump(transport, {
      concurrency: 1,
      prefetch: 3,
      process: recordAndSettle(started, () => new Promise((resolve) => setImmediate(resolve))),
    });
    await waitFor(() => started.length === 2 && asks.length === 2, { what: 'two started, the next receive waiting' });
    settlements.resolve();
    await waitFor(() => started.length === 4, { what: 'the held messages started without another receive' });
    expect(asks).toHaveLength(2);
    await pump.stop();
  });

  it('gives held messages back to their queue when it stops', async () => {
    const handler = deferred();
    const { transport, abandoned } = fakeTransport(3, Promise.resolve());
    const pump = startPump(transport, {
      concurrency: 1,
      prefetch: 2,
      async process(receipt, _stop, release) {
        await handler.promise;
        release();
        await receipt.complete();
      },
    });
    await waitFor(() => pump.active === 1, { what: 'the first message running' });
    const stopping = pump.stop();
    handler.resolve();
    await stopping;
    expect(abandoned.sort()).toEqual(['1', '2']);
  });
});
