/**
 * The recoverability conformance suite: retries end on every transport, whatever it can count.
 *   recoverabilityConformance('rabbitmq classic', () => makeFixture('classic'));
 * A handler that always throws runs exactly immediateRetries + 1 times per round, and the message
 * then lands in the error queue with the attempts recorded. Transports whose delivery count is
 * inexact (`capabilities.exactDeliveryCount` false) pass because the core counts in a header.
 */
import { describe, expect, it } from 'vitest';
import { handle } from '../core/context.js';
import { silentLogger } from '../core/logger.js';
import { defineCommand } from '../core/messages.js';
import type { Transport } from '../core/transport.js';
import { createEndpoint } from '../endpoint/endpoint.js';
import { FailureHeaders } from '../recoverability/failure-headers.js';
import type { TransportFixture } from './transport-conformance.js';
import { waitFor } from './wait.js';

const AlwaysFails = defineCommand<{ n: number }>('Conformance.AlwaysFails');

async function firstInQueue(transport: Transport, queue: string) {
  const signal = new AbortController().signal;
  return waitFor(async () => (await transport.receive(queue, { max: 1, waitMs: 200, signal }))[0], {
    timeoutMs: 20_000,
    what: `a message in ${queue}`,
  });
}

export function recoverabilityConformance(name: string, makeFixture: () => Promise<TransportFixture>): void {
  describe(`recoverability conformance: ${name}`, () => {
    const runFailing = async (recoverability: { immediateRetries: number; delayed: number }) => {
      const fx = await makeFixture();
      const endpointName = fx.queue('AlwaysFails');
      const errorQueue = fx.queue('error');
      let runs = 0;
      const endpoint = createEndpoint({
        name: endpointName,
        transport: fx.create(),
        logger: silentLogger,
        concurrency: 1,
        routes: { 'Conformance.*': endpointName },
        recoverability: {
          immediateRetries: recoverability.immediateRetries,
          delayedRetries: { count: recoverability.delayed, incrementMs: 50 },
          errorQueue,
        },
        handlers: [
          handle(AlwaysFails, () => {
            runs += 1;
            throw new Error(`attempt ${runs} fails`);
          }),
        ],
      });
      const reader = fx.create();
      try {
        await endpoint.start();
        await reader.open();
        await endpoint.send(AlwaysFails, { n: 1 });
        const failed = await firstInQueue(reader, errorQueue);
        await failed.complete();
        // The error-queue copy is sent before the original is removed: let that settle.
        await endpoint.stop();
        return { runs, headers: failed.message.headers };
      } finally {
        await endpoint.stop().catch(() => undefined);
        await reader.close();
        await fx.cleanup();
      }
    };

    it('runs a handler that always throws immediateRetries + 1 times, then moves the message to the error queue', async () => {
      const { runs, headers } = await runFailing({ immediateRetries: 3, delayed: 0 });
      expect(runs).toBe(4);
      expect(headers[FailureHeaders.ImmediateAttempts]).toBe('4');
      expect(headers[FailureHeaders.DelayedRound]).toBe('0');
    });

    it('gives every delayed round a fresh set of immediate retries', async (ctx) => {
      const fx = await makeFixture();
      const delayed = fx.create().capabilities.delayedDelivery;
      await fx.cleanup();
      if (!delayed) ctx.skip(`${name} has no delayed delivery`);
      const { runs, headers } = await runFailing({ immediateRetries: 2, delayed: 2 });
      expect(runs).toBe(9);
      expect(headers[FailureHeaders.ImmediateAttempts]).toBe('3');
      expect(headers[FailureHeaders.DelayedRound]).toBe('2');
    });
  });
}
