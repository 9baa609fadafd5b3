/**
 * Traces on SQLite with the in-memory span exporter: a client, a distributor and two workers;
 * one trace per conversation, the parent chain through the distributor, the messaging attributes;
 * failures recorded with the exception, retries and the error-queue move as events.
 */
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { afterEach, describe, expect, it } from 'vitest';
import { createEndpoint, defineCommand, defineMessage, handle, silentLogger, startDistributor, distributorWorker, type Endpoint, type EndpointOptions } from '../../src/index.js';
import { openTelemetry, type SwitchyardTelemetry } from '../../src/opentelemetry/index.js';
import { MemoryBroker, memoryTransport } from '../../src/memory/index.js';
import { memoryDistributorStore } from '../../src/scaleout/distributor-store.js';
import { sqliteDistributorStore, sqliteTransport } from '../../src/sqlite/index.js';
import { waitFor } from '../../src/testing/wait.js';
import { inMemoryTelemetry, kindName, parentOf, tempDb } from './fixtures/otel.js';

const Work = defineCommand<{ n: number }>('Test.Work');
const Done = defineMessage<{ n: number }>('Test.Done');

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function started(telemetry: SwitchyardTelemetry, options: EndpointOptions): Promise<Endpoint> {
  const endpoint = createEndpoint(telemetry.instrument({ logger: silentLogger, ...options }));
  cleanups.push(() => endpoint.stop());
  await endpoint.start();
  return endpoint;
}

function setup() {
  const otel = inMemoryTelemetry();
  const db = tempDb();
  cleanups.push(() => db.cleanup(), () => otel.shutdown());
  return { otel, db, telemetry: openTelemetry({ tracerProvider: otel.tracerProvider, meterProvider: otel.meterProvider }) };
}

const one = (spans: ReadableSpan[], what: string, match: (s: ReadableSpan) => boolean): ReadableSpan => {
  const found = spans.filter(match);
  expect(found, what).toHaveLength(1);
  return found[0]!;
};

describe('tracing through a distributor (SQLite)', () => {
  it('makes one trace per message: send -> forward and process on a worker -> handle -> reply -> process on the client', async () => {
    const { otel, db, telemetry } = setup();
    const distributor = await startDistributor({
      endpoint: 'Sales',
      transport: telemetry.traceForwards(sqliteTransport({ path: db.file })),
      store: sqliteDistributorStore({ path: db.file }),
      logger: silentLogger,
    });
    cleanups.push(() => distributor.stop());
    for (const discriminator of ['a', 'b']) {
      await started(telemetry, {
        name: 'Sales',
        transport: sqliteTransport({ path: db.file }),
        queues: { shared: false, instance: true },
        instance: { discriminator },
        concurrency: 1,
        features: [distributorWorker({ distributor: 'Sales' })],
        handlers: [handle(Work, async ({ n }, ctx) => ctx.reply(Done, { n }))],
      });
    }
    await waitFor(() => distributor.status().workers.length === 2, { what: 'two workers ready' });
    const done: number[] = [];
    const client = await started(telemetry, {
      name: 'Client',
      transport: sqliteTransport({ path: db.file }),
      routes: { 'Test.Work': 'Sales' },
      handlers: [handle(Done, ({ n }) => void done.push(n))],
    });
    for (let n = 1; n <= 4; n++) await client.send(Work, { n });
    await waitFor(() => otel.spans().filter((s) => s.name === 'process Client').length === 4, { what: 'four replies processed' });

    const sends = otel.spans().filter((s) => s.name === 'send Sales');
    expect(sends).toHaveLength(4);
    const workers = new Set<string>();
    for (const send of sends) {
      const trace = otel.spans().filter((s) => s.spanContext().traceId === send.spanContext().traceId);
      expect(parentOf(send), 'the send outside any handler starts the trace').toBeUndefined();
      expect(kindName(send)).toBe('PRODUCER');
      expect(send.attributes).toMatchObject({
        'messaging.system': 'sqlite',
        'messaging.destination.name': 'Sales',
        'messaging.operation.type': 'send',
        'messaging.operation.name': 'send',
        'switchyard.message.type': 'Test.Work',
      });
      const messageId = send.attributes['messaging.message.id'];
      expect(messageId).toMatch(/^[0-9a-f-]{36}$/);
      expect(send.attributes['messaging.message.conversation_id']).toBe(messageId);

      const forward = one(trace, 'one forward span', (s) => s.name.startsWith('forward Sales@'));
      expect(parentOf(forward), 'the hop is a child of the producer span').toBe(send.spanContext().spanId);
      const process = one(trace, 'one process span on a worker', (s) => s.name.startsWith('process Sales@'));
      expect(parentOf(process), "the worker's process span is a child of the sender's producer span").toBe(send.spanContext().spanId);
      expect(process.attributes['messaging.destination.name']).toBe(forward.attributes['messaging.destination.name']);
      workers.add(String(process.attributes['messaging.destination.name']));
      expect(kindName(process)).toBe('CONSUMER');
      expect(process.attributes).toMatchObject({
        'messaging.operation.type': 'process',
        'messaging.message.id': messageId,
        'messaging.message.conversation_id': messageId,
        'messaging.consumer.group.name': 'Sales',
        'switchyard.message.type': 'Test.Work',
        'switchyard.message.attempt': 1,
        'switchyard.message.delayed_retries': 0,
        'switchyard.outcome': 'handled',
      });
      const handler = one(trace, 'one handler span on the worker', (s) => s.name === 'handle Test.Work');
      expect(parentOf(handler)).toBe(process.spanContext().spanId);
      const reply = one(trace, 'one reply span', (s) => s.name === 'reply Client');
      expect(parentOf(reply), 'the reply is sent from inside the handler').toBe(handler.spanContext().spanId);
      expect(kindName(reply)).toBe('PRODUCER');
      const processReply = one(trace, 'one process span on the client', (s) => s.name === 'process Client');
      expect(parentOf(processReply)).toBe(reply.spanContext().spanId);
      expect(processReply.attributes['messaging.message.conversation_id'], 'the reply stays in the conversation').toBe(messageId);
      const handleReply = one(trace, 'one handler span on the client', (s) => s.name === 'handle Test.Done');
      expect(parentOf(handleReply)).toBe(processReply.spanContext().spanId);
      expect(trace).toHaveLength(7);
    }
    expect([...workers].sort(), 'both workers took part').toEqual(['Sales@a', 'Sales@b']);
    expect(done.sort()).toEqual([1, 2, 3, 4]);
  });
});

describe('tracing through a distributor that receives and completes (memory: no Transport.forward)', () => {
  it('passes every member of the transport through (a member it dropped would silently go missing)', () => {
    const db = tempDb();
    cleanups.push(() => db.cleanup());
    const telemetry = openTelemetry({ tracerProvider: inMemoryTelemetry().tracerProvider, metrics: false });
    const members = (o: object) => {
      const names = new Set<string>();
      for (let p: object | null = o; p && p !== Object.prototype; p = Object.getPrototypeOf(p)) for (const n of Object.getOwnPropertyNames(p)) if (n !== 'constructor') names.add(n);
      return [...names].sort();
    };
    for (const inner of [sqliteTransport({ path: db.file }), memoryTransport({ broker: new MemoryBroker() })]) {
      expect(members(telemetry.traceForwards(inner)), inner.name).toEqual(members(inner));
    }
  });

  it('makes the forward span from the completion that carries the stamped copy', async () => {
    const otel = inMemoryTelemetry();
    cleanups.push(() => otel.shutdown());
    const telemetry = openTelemetry({ tracerProvider: otel.tracerProvider, metrics: false });
    const broker = new MemoryBroker();
    const distributor = await startDistributor({ endpoint: 'Sales', transport: telemetry.traceForwards(memoryTransport({ broker })), store: memoryDistributorStore(), logger: silentLogger });
    cleanups.push(() => distributor.stop());
    await started(telemetry, {
      name: 'Sales',
      transport: memoryTransport({ broker }),
      queues: { shared: false, instance: true },
      instance: { discriminator: 'a' },
      features: [distributorWorker({ distributor: 'Sales' })],
      handlers: [handle(Work, () => undefined)],
    });
    await waitFor(() => distributor.status().workers.length === 1, { what: 'the worker ready' });
    const client = await started(telemetry, { name: 'Client', transport: memoryTransport({ broker }), sendOnly: true, routes: { 'Test.Work': 'Sales' } });
    await client.send(Work, { n: 1 });
    await waitFor(() => otel.spans().some((s) => s.name === 'process Sales@a'), { what: 'the message processed' });
    const send = one(otel.spans(), 'one send', (s) => s.name === 'send Sales');
    const forward = one(otel.spans(), 'one forward, none for the ready messages', (s) => s.name.startsWith('forward '));
    expect(forward.name).toBe('forward Sales@a');
    expect(forward.attributes).toMatchObject({ 'messaging.system': 'memory', 'messaging.operation.name': 'forward', 'switchyard.distributor.data_queue': 'Sales' });
    expect(parentOf(forward)).toBe(send.spanContext().spanId);
    expect(parentOf(one(otel.spans(), 'one process', (s) => s.name === 'process Sales@a'))).toBe(send.spanContext().spanId);
  });
});

describe('tracing failures', () => {
  it('records the exception on the handler span, each retry and the error-queue move as events on the process spans', async () => {
    const { otel, db, telemetry } = setup();
    const endpoint = await started(telemetry, {
      name: 'Sales',
      transport: sqliteTransport({ path: db.file }),
      recoverability: { immediateRetries: 1, delayedRetries: { count: 1, incrementMs: 20 } },
      handlers: [
        handle(Work, () => {
          throw new Error('card declined');
        }),
      ],
    });
    await endpoint.sendLocal(Work, { n: 1 });
    await waitFor(() => otel.spans().some((s) => s.attributes['switchyard.outcome'] === 'error-queue'), { what: 'the move to the error queue' });

    const send = one(otel.spans(), 'one send', (s) => s.name === 'send Sales');
    const processes = otel.spans().filter((s) => s.name === 'process Sales');
    // immediate retry, delayed retry, immediate retry again (the next round), error queue
    expect(processes.map((s) => [s.attributes['switchyard.message.delayed_retries'], s.attributes['switchyard.message.attempt'], s.attributes['switchyard.outcome']])).toEqual([
      [0, 1, 'immediate-retry'],
      [0, 2, 'delayed-retry'],
      [1, 1, 'immediate-retry'],
      [1, 2, 'error-queue'],
    ]);
    for (const process of processes) {
      expect(process.spanContext().traceId, 'retries stay in the trace').toBe(send.spanContext().traceId);
      expect(parentOf(process)).toBe(send.spanContext().spanId);
      expect(process.status).toMatchObject({ code: 2, message: 'card declined' });
    }
    expect(processes.map((s) => s.events.filter((e) => e.name.startsWith('switchyard.')).map((e) => [e.name, e.attributes?.['switchyard.retry.kind']]))).toEqual([
      [['switchyard.retry', 'immediate']],
      [['switchyard.retry', 'delayed']],
      [['switchyard.retry', 'immediate']],
      [['switchyard.error_queue', undefined]],
    ]);
    expect(processes[1]!.events.find((e) => e.name === 'switchyard.retry')!.attributes).toMatchObject({ 'switchyard.retry.delay_ms': 20, 'switchyard.message.delayed_retries': 1 });
    const handlers = otel.spans().filter((s) => s.name === 'handle Test.Work');
    expect(handlers).toHaveLength(4);
    for (const handler of handlers) {
      const exception = handler.events.find((e) => e.name === 'exception');
      expect(exception?.attributes).toMatchObject({ 'exception.type': 'Error', 'exception.message': 'card declined' });
      expect(handler.attributes['error.type']).toBe('Error');
      expect(processes.map((p) => p.spanContext().spanId)).toContain(parentOf(handler));
    }
  });

  it('leaves the traceparent Switchyard stamps when no tracer provider is registered (the API is a no-op): one trace id, a new span id per hop', async () => {
    const db = tempDb();
    cleanups.push(() => db.cleanup());
    const telemetry = openTelemetry();
    const seen: string[] = [];
    const endpoint = await started(telemetry, {
      name: 'Sales',
      transport: sqliteTransport({ path: db.file }),
      handlers: [
        handle(Work, async ({ n }, ctx) => {
          seen.push(ctx.headers.traceparent ?? 'none');
          if (n < 3) await ctx.sendLocal(Work, { n: n + 1 });
        }),
      ],
    });
    await endpoint.sendLocal(Work, { n: 1 });
    await waitFor(() => seen.length === 3, { what: 'three hops handled' });
    for (const header of seen) expect(header).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    expect(new Set(seen.map((h) => h.split('-')[1])).size, 'one trace').toBe(1);
    expect(new Set(seen.map((h) => h.split('-')[2])).size, 'a span id per hop').toBe(3);
  });
});
