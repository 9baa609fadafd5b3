/**
 * rabbitmq.send: end-to-end throughput of the bus on RabbitMQ (send N 1 KB commands, 100 at a
 * time, to an endpoint with a no-op handler), next to raw amqplib doing the same durable work in
 * the same run: persistent messages to a quorum queue, publisher confirms for every message,
 * a consumer with the same prefetch acking each message by hand. Latency is a separate run at a
 * fixed offered rate, timed from each message's scheduled send (no coordinated omission).
 * rabbitmq.send uses the default wire format (headers in a body envelope); the same run with
 * `wireFormat: 'headers'` (headers in an AMQP header table) is reported as
 * rabbitmq.send.headers-format, so the cost of the table is measured every run.
 *
 * rabbitmq.publish-fanout: publish N events to 4 logical subscribers (a queue each, bound to the
 * event's exchange); msgsPerSec counts deliveries. Baseline: the same number of deliveries made
 * by plain sends (one to each of the 4 endpoints per event), in the same run.
 */
import { randomBytes } from 'node:crypto';
import amqp from 'amqplib';
import { createEndpoint, defineCommand, defineEvent, handle, silentLogger, type Endpoint } from '../../src/index.js';
import { rabbitmqTransport, type WireFormat } from '../../src/rabbitmq/index.js';
import { reachable, serviceUrls } from '../../test/support/services.js';
import { median, percentile } from '../stats.js';
import type { BenchResult, BenchSuite } from '../types.js';
import { PING_PAYLOAD, pingCounter, sendPings, type PingBody } from '../load.js';

const URL_ = serviceUrls.rabbitmq;
const MESSAGES = 10_000;
const BATCH = 100;
/** Rounds of each rabbitmq.send variant; the results are their medians. */
const ROUNDS = 5;
const CONCURRENCY = 64;
const FANOUT_EVENTS = 1500;
const SUBSCRIBERS = ['Billing', 'Shipping', 'Audit', 'Loyalty'];

const run = randomBytes(3).toString('hex');
const Ping = defineCommand<PingBody>(`Bench${run}.Ping`);
const OrderPlaced = defineEvent<{ payload: string }>(`Bench${run}.OrderPlaced`);
const Notify = defineCommand<{ payload: string }>(`Bench${run}.Notify`);
const name = (endpoint: string) => `sy-bench-${run}-${endpoint}`;

async function deleteAll(queues: string[], exchanges: string[]): Promise<void> {
  const connection = await amqp.connect(URL_);
  const channel = await connection.createChannel();
  for (const q of queues) await channel.deleteQueue(q).catch(() => undefined);
  for (const e of exchanges) await channel.deleteExchange(e).catch(() => undefined);
  await connection.close();
}

/** Raw amqplib: the same durable work without the bus. */
async function rawRun(messages: number): Promise<number> {
  const queue = name(`raw-${randomBytes(2).toString('hex')}`);
  const connection = await amqp.connect(URL_, { noDelay: true }); // as the transport connects
  const publisher = await connection.createConfirmChannel();
  const consumer = await connection.createChannel();
  await publisher.assertQueue(queue, { durable: true, arguments: { 'x-queue-type': 'quorum' } });
  await consumer.prefetch(CONCURRENCY);
  let handled = 0;
  let finish!: () => void;
  const finished = new Promise<void>((resolve) => (finish = resolve));
  await consumer.consume(queue, (m) => {
    if (!m) return;
    JSON.parse(m.content.toString('utf8'));
    consumer.ack(m);
    if (++handled === messages) finish();
  });
  const body = JSON.stringify({ payload: PING_PAYLOAD, scheduledAt: 0 });
  const started = performance.now();
  for (let sent = 0; sent < messages; sent += BATCH) {
    await Promise.all(
      Array.from(
        { length: BATCH },
        (_, i) =>
          new Promise<void>((resolve, reject) =>
            publisher.sendToQueue(queue, Buffer.from(body), { persistent: true, messageId: `${sent + i}`, contentType: 'application/json' }, (e) => (e ? reject(e) : resolve())),
          ),
      ),
    );
  }
  await finished;
  const elapsed = performance.now() - started;
  await connection.close();
  await deleteAll([queue], []);
  return (messages / elapsed) * 1000;
}

async function busRun(messages: number, ratePerSec: number | undefined, wireFormat: WireFormat = 'envelope'): Promise<{ msgsPerSec: number; latencies: number[] }> {
  const endpointName = name(`Bench-${randomBytes(2).toString('hex')}`);
  const counter = pingCounter(Ping, messages);
  const endpoint = createEndpoint({
    name: endpointName,
    transport: rabbitmqTransport({ url: URL_, logger: silentLogger, wireFormat }),
    routes: { [Ping.typeName]: endpointName },
    concurrency: CONCURRENCY,
    logger: silentLogger,
    handlers: [counter.handler],
  });
  await endpoint.start();
  const started = performance.now();
  await sendPings(endpoint, Ping, messages, { batch: BATCH, ratePerSec });
  await counter.finished;
  const elapsed = performance.now() - started;
  await endpoint.stop();
  await deleteAll([endpointName], []);
  return { msgsPerSec: (messages / elapsed) * 1000, latencies: counter.latencies };
}

/** Deliveries per second to 4 subscriber endpoints, by publish or by plain sends. */
async function fanoutRun(mode: 'publish' | 'send', events: number): Promise<number> {
  const tag = randomBytes(2).toString('hex');
  let handled = 0;
  let finish!: () => void;
  const finished = new Promise<void>((resolve) => (finish = resolve));
  const count = () => void (++handled === events * SUBSCRIBERS.length && finish());
  const subscribers: Endpoint[] = SUBSCRIBERS.map((s) =>
    createEndpoint({
      name: name(`${s}-${tag}`),
      transport: rabbitmqTransport({ url: URL_, logger: silentLogger }),
      concurrency: CONCURRENCY,
      logger: silentLogger,
      handlers: [mode === 'publish' ? handle(OrderPlaced, count) : handle(Notify, count)],
    }),
  );
  const sales = createEndpoint({ name: name(`Sales-${tag}`), sendOnly: true, transport: rabbitmqTransport({ url: URL_, logger: silentLogger }), logger: silentLogger });
  await Promise.all([...subscribers, sales].map((e) => e.start()));
  const started = performance.now();
  for (let sent = 0; sent < events; sent += BATCH) {
    const n = Math.min(BATCH, events - sent);
    await Promise.all(
      Array.from({ length: n }, () =>
        mode === 'publish'
          ? sales.publish(OrderPlaced, { payload: PING_PAYLOAD })
          : Promise.all(subscribers.map((s) => sales.send(Notify, { payload: PING_PAYLOAD }, { to: s.name }))),
      ),
    );
  }
  await finished;
  const elapsed = performance.now() - started;
  await Promise.all([...subscribers, sales].map((e) => e.stop()));
  await deleteAll(subscribers.map((s) => s.name), []);
  return ((events * SUBSCRIBERS.length) / elapsed) * 1000;
}

const suite: BenchSuite = {
  names: ['rabbitmq.send', 'rabbitmq.send.headers-format', 'rabbitmq.publish-fanout'],
  async run({ only, log }) {
    if (!(await reachable(URL_))) {
      log(`skipped: RabbitMQ is not reachable at ${new URL(URL_).host} (start it, or set SWITCHYARD_RABBITMQ_URL)`);
      return [];
    }
    const results: BenchResult[] = [];
    const settings = { queueType: 'quorum', persistent: true, publisherConfirms: true, manualAcks: true, prefetch: CONCURRENCY, bodyBytes: 1000, tcpNoDelay: true };
    if (only('rabbitmq.send')) {
      log('warming up (quorum queue, persistent, confirms, 1 KB bodies)');
      await rawRun(1000);
      await busRun(1000, undefined);
      await busRun(1000, undefined, 'headers');
      // Alternate rounds and keep medians, so a noisy neighbour on the 2 cores hits all alike.
      const raw: number[] = [];
      const bus: number[] = [];
      const busHeaders: number[] = [];
      for (let round = 0; round < ROUNDS; round++) {
        raw.push(await rawRun(MESSAGES));
        bus.push((await busRun(MESSAGES, undefined)).msgsPerSec);
        busHeaders.push((await busRun(MESSAGES, undefined, 'headers')).msgsPerSec);
        log(`round ${round + 1}: raw amqplib ${raw.at(-1)!.toFixed(0)} msgs/s, bus ${bus.at(-1)!.toFixed(0)} msgs/s, bus with wireFormat 'headers' ${busHeaders.at(-1)!.toFixed(0)} msgs/s`);
      }
      const rate = 500;
      const latencyRun = await busRun(3000, rate);
      const sorted = latencyRun.latencies.sort((a, b) => a - b);
      /** A bus variant against the raw amqplib rounds it alternated with. */
      const againstRaw = (name: string, rates: number[], latency: Pick<BenchResult, 'p50Ms' | 'p99Ms'>, variant: Record<string, string | number>): BenchResult => ({
        name,
        transport: 'rabbitmq',
        messages: MESSAGES,
        msgsPerSec: median(rates),
        ...latency,
        baseline: 'raw amqplib (persistent, confirms, manual acks, same prefetch, quorum queue)',
        baselineMsgsPerSec: median(raw),
        ratio: median(rates) / median(raw),
        settings: { ...settings, ...variant, rounds: ROUNDS },
      });
      results.push(
        againstRaw('rabbitmq.send', bus, { p50Ms: percentile(sorted, 0.5), p99Ms: percentile(sorted, 0.99) }, { wireFormat: 'envelope', latencyOfferedRatePerSec: rate, latencyMessages: 3000 }),
        againstRaw('rabbitmq.send.headers-format', busHeaders, { p50Ms: null, p99Ms: null }, { wireFormat: 'headers' }),
      );
    }
    if (only('rabbitmq.publish-fanout')) {
      await fanoutRun('publish', 200);
      const published: number[] = [];
      const sent: number[] = [];
      for (let round = 0; round < 3; round++) {
        published.push(await fanoutRun('publish', FANOUT_EVENTS));
        sent.push(await fanoutRun('send', FANOUT_EVENTS));
        log(`fanout round ${round + 1}: publish ${published.at(-1)!.toFixed(0)} deliveries/s, plain sends ${sent.at(-1)!.toFixed(0)} deliveries/s`);
      }
      results.push({
        name: 'rabbitmq.publish-fanout',
        transport: 'rabbitmq',
        messages: FANOUT_EVENTS * SUBSCRIBERS.length,
        msgsPerSec: median(published),
        p50Ms: null,
        p99Ms: null,
        baseline: `plain sends, same deliveries (${FANOUT_EVENTS} x ${SUBSCRIBERS.length} endpoints)`,
        baselineMsgsPerSec: median(sent),
        ratio: median(published) / median(sent),
        settings: { ...settings, subscribers: SUBSCRIBERS.length, events: FANOUT_EVENTS, rounds: 3 },
      });
      await deleteAll([], [OrderPlaced.typeName]);
    }
    return results;
  },
};

export default suite;
