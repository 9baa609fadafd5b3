/**
 * The outbox with real processes (RabbitMQ + PostgreSQL): an endpoint process SIGKILLed after its
 * outbox transaction committed and before its dispatch. RabbitMQ redelivers the message to a
 * second process, whose inbox skips it; the second process's durability agent sends the dead
 * one's record once its claim has run out. One row, one acceptance.
 */
import amqp from 'amqplib';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createInterface } from 'node:readline';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { buildMessage, DEFAULT_LIMITS } from '../../src/core/envelope.js';
import { makeIdentity } from '../../src/core/identity.js';
import { defineCommand } from '../../src/index.js';
import { rabbitmqTransport } from '../../src/rabbitmq/index.js';
import { nodeScript } from '../../src/testing/node-script.js';
import { waitFor } from '../../src/testing/wait.js';
import { deleteTopology, describeOnBroker, rabbit, uniquePrefix } from '../rabbitmq/fixtures/broker.js';
import { service } from '../support/services.js';

const PlaceOrder = defineCommand<{ n: number }>('Outbox.PlaceOrder');
const postgres = await service('postgres');
const script = nodeScript('./fixtures/orders-process.ts', import.meta.url);
const children = new Set<ChildProcess>();

function start(env: Record<string, string>) {
  const child = spawn(process.execPath, [...script.execArgv, script.script], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
  children.add(child);
  child.once('exit', () => children.delete(child));
  const lines: string[] = [];
  createInterface({ input: child.stdout! }).on('line', (line) => lines.push(line));
  const line = (wanted: string) => waitFor(() => lines.includes(wanted), { timeoutMs: 30_000, what: `the endpoint process to print "${wanted}"` });
  return { child, lines, line };
}

const kill = (child: ChildProcess) => {
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGKILL');
  return exited;
};

afterAll(() => children.forEach((child) => child.kill('SIGKILL')));

/** Both services are needed: without PostgreSQL the suite is skipped with its reason (CI fails in service()). */
const describeOnBoth = postgres.skipReason ? (title: string) => describe(title, () => it.skip(postgres.skipReason!, () => undefined)) : describeOnBroker;

describeOnBoth(
  'the outbox with real processes (RabbitMQ, PostgreSQL)',
  () => {
    it('a SIGKILL after the commit and before the dispatch: the record is sent once by the agent, the redelivery is skipped, one row', async () => {
      const prefix = uniquePrefix('outbox');
      const schema = `sy_outbox_crash_${randomBytes(4).toString('hex')}`;
      const pool = new pg.Pool({ connectionString: postgres.url });
      await pool.query(`CREATE SCHEMA ${schema}; CREATE TABLE ${schema}.orders (n int NOT NULL, message_id text NOT NULL)`);
      const queues = [`${prefix}Orders`, `${prefix}Accepted`];
      const sender = rabbitmqTransport({ url: rabbit.url, logger: { info: () => undefined, warn: () => undefined, error: () => undefined } });
      await sender.open();
      for (const queue of queues) await sender.createQueue(queue);
      const env = { SWITCHYARD_RABBITMQ_URL: rabbit.url, SWITCHYARD_POSTGRES_URL: postgres.url, OUTBOX_SCHEMA: schema, OUTBOX_PREFIX: prefix };
      try {
        const first = start({ ...env, SWITCHYARD_HANG_DISPATCH: '1' });
        await first.line('started');
        const identity = makeIdentity('Client', 'host', 1, 'c1');
        const message = buildMessage(PlaceOrder, { n: 1 }, { intent: 'send', identity, replyTo: undefined, causedBy: undefined }, DEFAULT_LIMITS);
        await sender.dispatch([{ destination: `${prefix}Orders`, message }]);
        await first.line('dispatching');
        await kill(first.child);

        const rows = async () => (await pool.query<{ message_id: string }>(`SELECT message_id FROM ${schema}.orders`)).rows.map((r) => r.message_id);
        const records = async () => Number((await pool.query<{ c: string }>(`SELECT COUNT(*) AS c FROM ${schema}.outbox`)).rows[0]!.c);
        expect(await rows()).toEqual([message.id]);
        expect(await records()).toBe(1);

        const second = start(env);
        await second.line(`skipped ${message.id}`);
        await waitFor(async () => (await records()) === 0, { timeoutMs: 30_000, what: "the agent to send the dead process's record" });
        await kill(second.child);

        const connection = await amqp.connect(rabbit.url);
        const channel = await connection.createChannel();
        const acceptances: string[] = [];
        for (let got = await channel.get(`${prefix}Accepted`, { noAck: true }); got; got = await channel.get(`${prefix}Accepted`, { noAck: true })) acceptances.push(got.content.toString());
        await connection.close();
        expect(acceptances).toHaveLength(1);
        expect(await rows()).toEqual([message.id]);
      } finally {
        await sender.close();
        await deleteTopology({ queues });
        await pool.query(`DROP SCHEMA ${schema} CASCADE`);
        await pool.end();
      }
    });
  },
);
