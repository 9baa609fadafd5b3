/**
 * Every RabbitMQ wait has a bound (issue 24), on a private node behind a TCP proxy that
 * black-holes all traffic: a connect attempt ends by connectTimeoutMs, a send (connection wait and
 * publisher confirm alike) by sendTimeoutMs, each error reports the time really waited, and no
 * message confirmed to a sender is lost.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCodes, isSwitchyardError, silentLogger } from '../../src/index.js';
import { uuidv7 } from '../../src/core/ids.js';
import type { Transport, TransportMessage } from '../../src/core/transport.js';
import { rabbitmqTransport, type RabbitMqTransportOptions } from '../../src/rabbitmq/index.js';
import { waitFor } from '../../src/testing/wait.js';
import { privateBrokerSkipReason, startPrivateBroker, type PrivateBroker } from './fixtures/private-broker.js';
import { startTcpProxy, type TcpProxy } from './fixtures/tcp-proxy.js';

const suite = privateBrokerSkipReason ? describe.skip : describe;
const signal = new AbortController().signal;
const QUEUE = 'bounds';

function message(n: number): TransportMessage {
  const id = uuidv7();
  return { id, headers: { 'sy1-message-id': id, n: String(n) }, body: JSON.stringify({ n }) };
}

/** Runs `fn`, expecting it to fail; returns the error and the measured time. */
async function timed(fn: () => Promise<unknown>): Promise<{ error: unknown; ms: number }> {
  const started = Date.now();
  const error = await fn().then(() => undefined, (e: unknown) => e);
  return { error, ms: Date.now() - started };
}

/** The "gave up after N ms" the error reports. */
const reported = (error: unknown) => Number(/gave up after (\d+) ms/.exec((error as Error).message)?.[1]);

suite(`RabbitMQ waits are bounded${privateBrokerSkipReason ? ` (skipped: ${privateBrokerSkipReason})` : ''}`, () => {
  let broker: PrivateBroker;
  let proxy: TcpProxy;
  const transports: Transport[] = [];
  const open = async (options: Partial<RabbitMqTransportOptions>, direct = false) => {
    const t = rabbitmqTransport({ url: direct ? broker.url : `amqp://guest:guest@127.0.0.1:${proxy.port}`, logger: silentLogger, ...options });
    transports.push(t);
    await t.open();
    return t;
  };
  beforeAll(async () => {
    broker = await startPrivateBroker();
    console.info(`private RabbitMQ node ${broker.node} booted in ${broker.bootMs} ms`);
    const t = await open({}, true);
    await t.createQueue(QUEUE);
  }, 90_000);
  beforeAll(async () => void (proxy = await startTcpProxy({ port: broker.port })));
  afterEach(() => proxy.restore());
  afterAll(async () => {
    proxy?.restore();
    await Promise.all(transports.map((t) => t.close()));
    await proxy?.close();
    await broker?.stop();
  }, 60_000);

  it('ends a connect attempt that gets no handshake at connectTimeoutMs, and reconnects with backoff', async () => {
    proxy.blackhole();
    const t = rabbitmqTransport({ url: `amqp://guest:guest@127.0.0.1:${proxy.port}`, logger: silentLogger, connectTimeoutMs: 2000 });
    transports.push(t);
    const { error, ms } = await timed(() => t.open());
    expect(isSwitchyardError(error, ErrorCodes.TRANSPORT)).toBe(true);
    expect((error as Error).message).toMatch(/connectTimeoutMs \(2000 ms\)/);
    expect(Math.abs(ms - 2000)).toBeLessThanOrEqual(1000);
    console.info(`connect timeout 2000 ms: failed after ${ms} ms`);

    // A lost connection: each reconnect attempt ends by the bound, so attempts keep coming.
    proxy.restore();
    const attempts: number[] = [];
    const r = await open({ connectTimeoutMs: 2000, heartbeatSeconds: 1, reconnect: { initialDelayMs: 100, maxDelayMs: 200 }, onStateChange: (c) => c.state === 'reconnecting' && attempts.push(Date.now()) });
    proxy.blackhole();
    await waitFor(() => attempts.length >= 3, { timeoutMs: 20_000, what: 'three reconnect attempts' });
    const gaps = attempts.slice(1).map((at, i) => at - attempts[i]!);
    console.info(`reconnect attempts ${gaps.join(', ')} ms apart (bound 2000 ms + backoff <= 200 ms)`);
    for (const gap of gaps) expect(Math.abs(gap - 2100)).toBeLessThanOrEqual(1000);
    proxy.restore();
    await waitFor(() => r.state === 'connected', { timeoutMs: 15_000, what: 'connected again' });
  });

  it('ends a send whose publisher confirm never comes at sendTimeoutMs, saying it may still arrive', async () => {
    const t = await open({ sendTimeoutMs: 3000, heartbeatSeconds: 60 });
    await t.dispatch([{ destination: QUEUE, message: message(0) }]); // queue checked, channel open
    proxy.blackhole();
    const { error, ms } = await timed(() => t.dispatch([{ destination: QUEUE, message: message(1) }]));
    console.info(`send timeout 3000 ms (confirm wait): failed after ${ms} ms, reported ${reported(error)} ms`);
    expect(isSwitchyardError(error, ErrorCodes.TRANSPORT)).toBe(true);
    expect((error as Error).message).toMatch(/may still arrive \(at-least-once\)/);
    expect(Math.abs(ms - 3000)).toBeLessThanOrEqual(1000);
    expect(Math.abs(reported(error) - ms)).toBeLessThanOrEqual(100);
  });

  it('ends a send that waits for a lost connection at sendTimeoutMs and reports the whole wait', async () => {
    const t = await open({ sendTimeoutMs: 3000, heartbeatSeconds: 1, connectTimeoutMs: 1000 });
    await t.dispatch([{ destination: QUEUE, message: message(0) }]);
    proxy.blackhole();
    await waitFor(() => t.state === 'reconnecting', { timeoutMs: 10_000, what: 'the heartbeat to notice' });
    const { error, ms } = await timed(() => t.dispatch([{ destination: QUEUE, message: message(1) }]));
    console.info(`send timeout 3000 ms (connection wait): failed after ${ms} ms, reported ${reported(error)} ms`);
    expect(isSwitchyardError(error, ErrorCodes.TRANSPORT)).toBe(true);
    expect(Math.abs(ms - 3000)).toBeLessThanOrEqual(1000);
    expect(Math.abs(reported(error) - ms)).toBeLessThanOrEqual(100);
  });

  it('loses no message confirmed to a sender across a black-hole', async () => {
    const t = await open({ sendTimeoutMs: 1500, heartbeatSeconds: 1, connectTimeoutMs: 1000 });
    const confirmed = new Set<string>();
    let failed = 0;
    let n = 0;
    const sendOne = async () => {
      const m = message(n++);
      await t.dispatch([{ destination: QUEUE, message: m }]).then(() => confirmed.add(m.id), () => failed++);
    };
    const sending = (async () => {
      while (n < 600) await Promise.all([sendOne(), sendOne(), sendOne()]);
    })();
    await waitFor(() => confirmed.size >= 100, { timeoutMs: 20_000, what: '100 confirmed sends' });
    proxy.blackhole();
    await waitFor(() => failed >= 3, { timeoutMs: 20_000, what: 'sends failing in the black-hole' });
    proxy.restore();
    await sending;
    console.info(`black-hole run: ${confirmed.size} confirmed, ${failed} failed of ${n}`);
    expect(confirmed.size).toBeGreaterThan(100);

    const reader = await open({}, true);
    const seen = new Set<string>();
    await waitFor(
      async () => {
        for (const r of await reader.receive(QUEUE, { max: 200, waitMs: 200, signal })) {
          seen.add(r.message.id);
          await r.complete();
        }
        return [...confirmed].every((id) => seen.has(id));
      },
      { timeoutMs: 30_000, what: 'every confirmed message in the queue' },
    ).catch(() => undefined);
    expect([...confirmed].filter((id) => !seen.has(id))).toEqual([]);
  });
});
