/** Metrics on SQLite, read back from an in-memory metric reader: what an autoscaler and an operator watch. */
import type { HistogramMetricData } from '@opentelemetry/sdk-metrics';
import { afterEach, describe, expect, it } from 'vitest';
import { createEndpoint, defineCommand, handle, silentLogger, type Endpoint } from '../../src/index.js';
import { openTelemetry } from '../../src/opentelemetry/index.js';
import { sqliteTransport } from '../../src/sqlite/index.js';
import { waitFor } from '../../src/testing/wait.js';
import { inMemoryTelemetry, tempDb, total } from './fixtures/otel.js';

const Work = defineCommand<{ n: number; fail?: boolean }>('Test.Work');
const Audit = defineCommand<{ n: number }>('Test.Audit');

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

describe('metrics', () => {
  it('counts sent, consumed, retries and error-queue moves, times processing and critical time, and reports queue depth', async () => {
    const otel = inMemoryTelemetry();
    const db = tempDb();
    cleanups.push(() => db.cleanup(), () => otel.shutdown());
    const audit = sqliteTransport({ path: db.file });
    await audit.open();
    await audit.createQueue('Audit');
    await audit.close();
    const telemetry = openTelemetry({ tracerProvider: otel.tracerProvider, meterProvider: otel.meterProvider, traces: false });
    const handled: number[] = [];
    const endpoint: Endpoint = createEndpoint(
      telemetry.instrument({
        name: 'Sales',
        transport: sqliteTransport({ path: db.file }),
        logger: silentLogger,
        routes: { 'Test.Audit': 'Audit' },
        recoverability: { immediateRetries: 1, delayedRetries: { count: 0 } },
        handlers: [
          handle(Work, async ({ n, fail }, ctx) => {
            // Sent from a failing handler too: it must not count, it never leaves.
            await ctx.send(Audit, { n });
            if (fail) throw new Error('boom');
            handled.push(n);
          }),
        ],
      }),
    );
    cleanups.push(() => endpoint.stop());
    await endpoint.start();
    for (let n = 1; n <= 3; n++) await endpoint.sendLocal(Work, { n });
    await endpoint.sendLocal(Work, { n: 4, fail: true });
    const sales = { 'messaging.system': 'sqlite', 'messaging.destination.name': 'Sales' };
    await waitFor(async () => total(await otel.metric('messaging.process.duration')) === 5, { what: 'five processing attempts recorded' });

    expect(handled.sort()).toEqual([1, 2, 3]);
    expect(total(await otel.metric('messaging.client.consumed.messages'), { ...sales, 'messaging.consumer.group.name': 'Sales' })).toBe(5);
    const sent = await otel.metric('messaging.client.sent.messages');
    expect(total(sent, { 'messaging.destination.name': 'Sales', 'messaging.operation.name': 'send' }), 'four sendLocal calls').toBe(4);
    expect(total(sent, { 'messaging.destination.name': 'Audit' }), "only the handled messages' sends left").toBe(3);
    expect(total(await otel.metric('switchyard.message.retries'), { ...sales, 'switchyard.retry.kind': 'immediate', 'switchyard.message.type': 'Test.Work' })).toBe(1);
    expect(total(await otel.metric('switchyard.message.error_queue_moves'), { ...sales, 'switchyard.message.type': 'Test.Work' })).toBe(1);
    const duration = (await otel.metric('messaging.process.duration')) as HistogramMetricData;
    expect(duration.descriptor.unit).toBe('s');
    expect(total(duration, { 'error.type': 'Error' }), 'the two failed attempts carry error.type').toBe(2);
    expect(total(await otel.metric('switchyard.message.critical_time'), { 'switchyard.message.type': 'Test.Work' }), 'critical time of the handled ones').toBe(3);

    const depth = await otel.metric('switchyard.queue.depth');
    const depthOf = (queue: string) => total(depth, { 'messaging.destination.name': queue });
    expect(depthOf('error')).toBe(1);
    expect(depthOf('Sales')).toBe(0);
  });
});
