/**
 * The retry pipeline on the embedded SQLite transport: immediate -> delayed -> error queue,
 * messages that can never succeed, and counts that continue on another instance.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { buildMessage, DEFAULT_LIMITS } from '../../src/core/envelope.js';
import { makeIdentity } from '../../src/core/identity.js';
import type { Transport, TransportMessage } from '../../src/core/transport.js';
import { createEndpoint, defineCommand, failedMessages, handle, silentLogger, type Endpoint, type EndpointOptions } from '../../src/index.js';
import { FailureHeaders } from '../../src/recoverability/failure-headers.js';
import { sqliteTransport } from '../../src/sqlite/index.js';
import { waitFor } from '../../src/testing/wait.js';
import { tempDb, type TempDb } from './fixtures/bus.js';

const PlaceOrder = defineCommand<{ orderId: number }>('Sales.PlaceOrder');
const CancelOrder = defineCommand<{ orderId: number }>('Sales.CancelOrder');

let db: TempDb;
const running: Endpoint[] = [];
const inspectors: Transport[] = [];

afterEach(async () => {
  await Promise.allSettled(running.splice(0).map((e) => e.stop()));
  await Promise.allSettled(inspectors.splice(0).map((t) => t.close()));
  db?.cleanup();
});

async function start(options: Omit<EndpointOptions, 'transport' | 'name'> & { name?: string }): Promise<Endpoint> {
  const endpoint = createEndpoint({ name: 'Sales', transport: sqliteTransport({ path: db.file }), logger: silentLogger, ...options });
  running.push(endpoint);
  await endpoint.start();
  return endpoint;
}

/** A second connection to the same file, as an operator's tool or another process has. */
async function inspector(): Promise<Transport> {
  const transport = sqliteTransport({ path: db.file });
  inspectors.push(transport);
  await transport.open();
  return transport;
}

const sender = makeIdentity('Client', 'host', 1, 'c1');
function message(definition = PlaceOrder, body: unknown = { orderId: 1 }): TransportMessage {
  return buildMessage(definition, body, { intent: 'send', identity: sender, replyTo: undefined, causedBy: undefined }, DEFAULT_LIMITS);
}

interface Attempt {
  deliveryCount: number;
  delayedRound: string | undefined;
  at: number;
}

describe('recoverability on SQLite', () => {
  it('handles a message that fails twice once, retrying immediately and then after the configured delay', async () => {
    db = tempDb();
    const attempts: Attempt[] = [];
    let handled = 0;
    const sales = await start({
      recoverability: { immediateRetries: 1, delayedRetries: { count: 2, incrementMs: 200 } },
      handlers: [
        handle(PlaceOrder, (_order, ctx) => {
          attempts.push({ deliveryCount: ctx.deliveryCount, delayedRound: ctx.headers[FailureHeaders.DelayedRound], at: Date.now() });
          if (attempts.length <= 2) throw new Error(`transient failure ${attempts.length}`);
          handled += 1;
        }),
      ],
    });
    await sales.sendLocal(PlaceOrder, { orderId: 7 });
    const admin = (await inspector()).admin!;
    await waitFor(async () => handled === 1 && (await admin.depth('Sales')) === 0, { what: 'the order to be handled and completed' });
    expect(attempts.map((a) => [a.deliveryCount, a.delayedRound])).toEqual([
      [1, undefined], // first delivery
      [2, undefined], // immediate retry: the same copy delivered again
      [1, '1'], // delayed retry 1: a new copy, due 200 ms later
    ]);
    expect(attempts[2]!.at - attempts[1]!.at).toBeGreaterThanOrEqual(190);
    expect(handled).toBe(1);
    expect(await admin.depth('error')).toBe(0);
  });

  it('moves a poison message to the error queue with every failure header after exhausting retries', async () => {
    db = tempDb();
    const attempts: Attempt[] = [];
    const sales = await start({
      instance: { discriminator: 'a1' },
      recoverability: { immediateRetries: 2, delayedRetries: { count: 1, incrementMs: 100 } },
      handlers: [
        handle(PlaceOrder, (_order, ctx) => {
          attempts.push({ deliveryCount: ctx.deliveryCount, delayedRound: ctx.headers[FailureHeaders.DelayedRound], at: Date.now() });
          throw new TypeError('order 9 has no lines');
        }),
      ],
    });
    const sent = message(PlaceOrder, { orderId: 9 });
    await (await inspector()).dispatch([{ destination: 'Sales', message: sent }]);
    const errors = failedMessages(await inspector());
    const failed = await waitFor(() => errors.show(sent.id), { what: 'the message in the error queue' });
    expect(attempts.map((a) => [a.deliveryCount, a.delayedRound])).toEqual([
      [1, undefined], [2, undefined], [3, undefined],
      [1, '1'], [2, '1'], [3, '1'],
    ]);
    expect(failed.body).toBe(sent.body);
    expect(failed.headers['sy1-message-id']).toBe(sent.id);
    expect(failed).toMatchObject({
      messageType: 'Sales.PlaceOrder',
      failedQueue: 'Sales',
      endpoint: 'Sales',
      instance: sales.identity.id,
      exceptionType: 'TypeError',
      exceptionMessage: 'order 9 has no lines',
      immediateAttempts: 3,
      delayedRetries: 1,
      reason: 'failed 3 times in each of 2 rounds',
    });
    expect(failed.stack).toMatch(/TypeError: order 9 has no lines\n\s+at /);
    expect(Date.now() - failed.failedAt!.getTime()).toBeLessThan(60_000);
    expect(failed.headers[FailureHeaders.FirstFailureAt]).toMatch(/^\d{4}-\d\d-\d\dT/);
    expect(await (await inspector()).admin!.depth('Sales')).toBe(0);
  });

  it('sends messages that can never succeed to the error queue at once with the reason, and keeps processing others', async () => {
    db = tempDb();
    const handled: number[] = [];
    await start({
      limits: { maxBodyBytes: 2000 },
      messages: [CancelOrder], // known type, but no handler here
      handlers: [handle(PlaceOrder, (order) => void handled.push(order.orderId))],
    });
    const good = (orderId: number) => message(PlaceOrder, { orderId });
    const malformed = { ...good(100), body: '{"orderId": 1,' };
    const oversized = { ...good(101), body: JSON.stringify({ orderId: 101, pad: 'x'.repeat(3000) }) };
    const unknown = message(defineCommand('Sales.RefundOrder'), { orderId: 102 });
    const noHandler = message(CancelOrder, { orderId: 103 });
    const bad = { malformed, oversized, unknown, noHandler };
    const client = await inspector();
    await client.dispatch([malformed, good(1), oversized, unknown, good(2), noHandler, good(3)].map((m) => ({ destination: 'Sales', message: m })));

    const errors = failedMessages(await inspector());
    await waitFor(async () => handled.length === 3 && (await errors.list()).total === 4, { what: '3 handled and 4 failed' });
    expect(handled.sort()).toEqual([1, 2, 3]);
    const codes: Record<string, string | undefined> = {};
    for (const [name, m] of Object.entries(bad)) {
      const failed = await errors.show(m.id);
      expect(failed?.body, name).toBe(m.body);
      expect(failed?.immediateAttempts, `${name} was not retried`).toBe(1);
      expect(failed?.delayedRetries, `${name} had no delayed retry`).toBe(0);
      expect(failed?.reason).toMatch(/not retried/);
      codes[name] = failed?.exceptionCode;
    }
    expect(codes).toEqual({
      malformed: 'SY_ERR_MALFORMED_MESSAGE',
      oversized: 'SY_ERR_MESSAGE_TOO_LARGE',
      unknown: 'SY_ERR_UNKNOWN_MESSAGE_TYPE',
      noHandler: 'SY_ERR_NO_HANDLER',
    });
  });

  it("returns a message that failed in an instance's own queue to the shared queue, where any instance takes it", async () => {
    db = tempDb();
    let fixed = false;
    const a1 = await start({
      instance: { discriminator: 'a1' },
      queues: { shared: true, instance: true },
      recoverability: { immediateRetries: 0, delayedRetries: { count: 0 } },
      handlers: [
        handle(PlaceOrder, () => {
          if (!fixed) throw new Error('fails until fixed');
        }),
      ],
    });
    const sent = message(PlaceOrder, { orderId: 4 });
    await (await inspector()).dispatch([{ destination: a1.identity.address, message: sent }]);
    const errors = failedMessages(await inspector());
    const failed = await waitFor(() => errors.show(sent.id), { what: 'the message in the error queue' });
    expect(failed.failedQueue).toBe('Sales');
    fixed = true;
    expect(await errors.retry([sent.id])).toEqual([{ id: sent.id, status: 'retried', queues: ['Sales'] }]);
    const admin = (await inspector()).admin!;
    await waitFor(async () => (await admin.depth('Sales')) === 0 && (await admin.depth('error')) === 0, { what: 'the retried message to be handled' });
  });

  it('continues the retry count on another instance instead of starting again', async () => {
    db = tempDb();
    const recoverability = { immediateRetries: 5, delayedRetries: { count: 1, incrementMs: 100 } };
    const seen: string[] = [];
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const failing = (name: string, pause: boolean) =>
      handle(PlaceOrder, async (_order, ctx) => {
        seen.push(`${name}:${ctx.deliveryCount}:${ctx.headers[FailureHeaders.DelayedRound] ?? 0}`);
        if (pause && seen.length === 3) await gate;
        throw new Error(`fails on ${name}`);
      });
    const a = await start({ instance: { discriminator: 'a' }, concurrency: 1, recoverability, handlers: [failing('A', true)] });
    await a.sendLocal(PlaceOrder, { orderId: 5 });
    await waitFor(() => seen.length === 3, { what: 'three attempts on instance A' });
    const stopping = a.stop(); // stops receiving; the third attempt finishes (fails) while draining
    release();
    await stopping;
    expect(seen).toEqual(['A:1:0', 'A:2:0', 'A:3:0']);

    const b = await start({ instance: { discriminator: 'b' }, recoverability, handlers: [failing('B', false)] });
    const errors = failedMessages(await inspector());
    const failed = await waitFor(async () => (await errors.list()).messages[0], { what: 'the message in the error queue' });
    // 6 attempts per round over 2 rounds in all, A's 3 included: B continued A's count.
    expect(seen).toEqual(['A:1:0', 'A:2:0', 'A:3:0', 'B:4:0', 'B:5:0', 'B:6:0', 'B:1:1', 'B:2:1', 'B:3:1', 'B:4:1', 'B:5:1', 'B:6:1']);
    expect(failed).toMatchObject({ instance: b.identity.id, immediateAttempts: 6, delayedRetries: 1 });
  });
});
