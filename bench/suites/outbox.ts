/**
 * outbox.rabbitmq: RabbitMQ with a PostgreSQL outbox against RabbitMQ alone, same run, same work.
 * N 1 KB commands (sent 100 at a time) reach a Worker endpoint whose handler writes one row (with
 * the outbox: through the transaction's client, in the outbox transaction; without: with its own
 * autocommit query on the same pool, as an application without an outbox would) and sends one
 * message on to a Sink endpoint. Throughput counts messages handled by the Sink. Quorum queues,
 * publisher confirms; PostgreSQL at its defaults (synchronous_commit on).
 */
import { randomBytes } from 'node:crypto';
import amqp from 'amqplib';
import pg from 'pg';
import { createEndpoint, defineCommand, handle, silentLogger } from '../../src/index.js';
import { postgresClient, postgresOutbox } from '../../src/postgres/index.js';
import { rabbitmqTransport } from '../../src/rabbitmq/index.js';
import { reachable, serviceUrls } from '../../test/support/services.js';
import { median } from '../stats.js';
import type { BenchResult, BenchSuite } from '../types.js';
import { PING_PAYLOAD, sendInBatches } from '../load.js';

const MESSAGES = 3000;
const ROUNDS = 3;
const CONCURRENCY = 32;
const run = randomBytes(3).toString('hex');
const Work = defineCommand<{ payload: string; n: number }>(`Bench${run}.Work`);
const Done = defineCommand<{ n: number }>(`Bench${run}.Done`);

async function oneRun(pool: pg.Pool, schema: string, withOutbox: boolean, messages: number): Promise<number> {
  const tag = randomBytes(2).toString('hex');
  const [worker, sink] = [`sy-bench-${run}-Worker-${tag}`, `sy-bench-${run}-Sink-${tag}`];
  let handled = 0;
  let finish!: () => void;
  const finished = new Promise<void>((resolve) => (finish = resolve));
  const transport = () => rabbitmqTransport({ url: serviceUrls.rabbitmq, logger: silentLogger });
  const workerEndpoint = createEndpoint({
    name: worker,
    transport: transport(),
    concurrency: CONCURRENCY,
    logger: silentLogger,
    routes: { [Done.typeName]: sink },
    ...(withOutbox ? { outbox: postgresOutbox({ pool, schema }) } : {}),
    handlers: [
      handle(Work, async (work, ctx) => {
        const sql = `INSERT INTO ${schema}.work (n) VALUES ($1)`;
        await (withOutbox ? (await postgresClient(ctx)).query(sql, [work.n]) : pool.query(sql, [work.n]));
        await ctx.send(Done, { n: work.n });
      }),
    ],
  });
  const sinkEndpoint = createEndpoint({
    name: sink,
    transport: transport(),
    concurrency: CONCURRENCY,
    logger: silentLogger,
    handlers: [handle(Done, () => void (++handled === messages && finish()))],
  });
  const client = createEndpoint({ name: `sy-bench-${run}-Client-${tag}`, sendOnly: true, transport: transport(), logger: silentLogger, routes: { [Work.typeName]: worker } });
  await Promise.all([sinkEndpoint.start(), workerEndpoint.start(), client.start()]);
  const started = performance.now();
  let n = 0;
  await sendInBatches(messages, 100, () => client.send(Work, { payload: PING_PAYLOAD, n: n++ }));
  await finished;
  const elapsed = performance.now() - started;
  await Promise.all([client.stop(), workerEndpoint.stop(), sinkEndpoint.stop()]);
  const connection = await amqp.connect(serviceUrls.rabbitmq);
  const channel = await connection.createChannel();
  for (const queue of [worker, sink]) await channel.deleteQueue(queue).catch(() => undefined);
  await connection.close();
  return (messages / elapsed) * 1000;
}

const suite: BenchSuite = {
  names: ['outbox.rabbitmq'],
  async run({ log }) {
    if (!(await reachable(serviceUrls.rabbitmq)) || !(await reachable(serviceUrls.postgres))) {
      log('outbox.rabbitmq: skipped, RabbitMQ or PostgreSQL is not reachable');
      return [];
    }
    const schema = `sy_bench_outbox_${run}`;
    const pool = new pg.Pool({ connectionString: serviceUrls.postgres, max: CONCURRENCY });
    await pool.query(`CREATE SCHEMA ${schema}; CREATE TABLE ${schema}.work (n int NOT NULL)`);
    try {
      log('warming up (quorum queues, confirms; PostgreSQL synchronous_commit on)');
      await oneRun(pool, schema, false, 500);
      await oneRun(pool, schema, true, 500);
      const alone: number[] = [];
      const outboxed: number[] = [];
      for (let round = 1; round <= ROUNDS; round++) {
        alone.push(await oneRun(pool, schema, false, MESSAGES));
        outboxed.push(await oneRun(pool, schema, true, MESSAGES));
        log(`round ${round}: RabbitMQ alone ${alone.at(-1)!.toFixed(0)} msgs/s, with the PostgreSQL outbox ${outboxed.at(-1)!.toFixed(0)} msgs/s`);
      }
      const [base, bus] = [median(alone), median(outboxed)];
      const result: BenchResult = {
        name: 'outbox.rabbitmq',
        transport: 'rabbitmq',
        messages: MESSAGES,
        msgsPerSec: bus,
        p50Ms: null,
        p99Ms: null,
        baseline: 'the same endpoints on RabbitMQ without an outbox (the row written by an autocommit query)',
        baselineMsgsPerSec: base,
        ratio: bus / base,
        settings: { queueType: 'quorum', publisherConfirms: true, postgresSynchronousCommit: 'on', concurrency: CONCURRENCY, rounds: ROUNDS },
      };
      return [result];
    } finally {
      await pool.query(`DROP SCHEMA ${schema} CASCADE`);
      await pool.end();
    }
  },
};

export default suite;
