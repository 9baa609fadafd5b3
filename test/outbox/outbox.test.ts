/**
 * The transactional outbox, in process, on both stores (PostgreSQL and the application's own
 * SQLite file), with the memory transport: the handler's row and its sends commit together or
 * not at all; a redelivered message is acknowledged without running the handler again; sends
 * outside handlers join the transaction; a record whose dispatch failed is sent by the
 * durability agent once its claim runs out; claims are fenced.
 */
import Database from 'better-sqlite3';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { buildMessage, DEFAULT_LIMITS } from '../../src/core/envelope.js';
import { makeIdentity } from '../../src/core/identity.js';
import type { Transport } from '../../src/core/transport.js';
import { createEndpoint, defineCommand, handle, silentLogger, type Endpoint, type HandlerContext } from '../../src/index.js';
import { MemoryBroker, memoryTransport } from '../../src/memory/index.js';
import type { Outbox } from '../../src/outbox/outbox.js';
import { postgresClient, postgresOutbox, postgresOutboxStore } from '../../src/postgres/index.js';
import { sqliteOutbox, sqliteOutboxStore, sqliteSession } from '../../src/sqlite/index.js';
import { waitFor } from '../../src/testing/wait.js';
import { tempDb } from '../recoverability/fixtures/bus.js';
import { service } from '../support/services.js';

const PlaceOrder = defineCommand<{ n: number; fail?: boolean }>('Outbox.PlaceOrder');
const OrderAccepted = defineCommand<{ n: number }>('Outbox.OrderAccepted');
const postgres = await service('postgres');

/** One store under test: how to make an outbox, write a row through a context, and read the rows back. */
interface Backend {
  name: string;
  skip: string | undefined;
  outbox(settings?: { leaseMs?: number; agentPollMs?: number }): Promise<Outbox>;
  insert(ctx: Pick<HandlerContext, 'unitOfWork'>, n: number): Promise<void>;
  orders(): Promise<number[]>;
  /** Outbox records not yet dispatched and removed. */
  pending(): Promise<number>;
  /** A second store on the same database, for the fencing test. */
  store(): ReturnType<typeof postgresOutboxStore>;
  cleanup(): Promise<void>;
}

function sqliteBackend(): Backend {
  const db = tempDb();
  const init = new Database(db.file);
  init.pragma('journal_mode = WAL');
  init.exec('CREATE TABLE orders (n INTEGER NOT NULL)');
  init.close();
  return {
    name: 'sqlite',
    skip: undefined,
    outbox: async (settings) => sqliteOutbox({ path: db.file, ...settings }),
    insert: async (ctx, n) => sqliteSession(ctx).run('INSERT INTO orders (n) VALUES (?)', n),
    orders: async () => {
      const read = new Database(db.file, { readonly: true });
      try {
        return read.prepare('SELECT n FROM orders ORDER BY n').pluck().all() as number[];
      } finally {
        read.close();
      }
    },
    pending: async () => {
      const read = new Database(db.file, { readonly: true });
      try {
        return read.prepare('SELECT COUNT(*) FROM sy_outbox').pluck().get() as number;
      } finally {
        read.close();
      }
    },
    store: () => sqliteOutboxStore({ path: db.file }),
    cleanup: async () => db.cleanup(),
  };
}

function postgresBackend(): Backend {
  const schema = `sy_outbox_${randomBytes(4).toString('hex')}`;
  const pool = new pg.Pool({ connectionString: postgres.url, max: 6 });
  return {
    name: 'postgres',
    skip: postgres.skipReason,
    outbox: async (settings) => {
      await pool.query(`CREATE SCHEMA IF NOT EXISTS ${schema}; CREATE TABLE IF NOT EXISTS ${schema}.orders (n int NOT NULL)`);
      return postgresOutbox({ pool, schema, ...settings });
    },
    insert: async (ctx, n) => void (await (await postgresClient(ctx)).query(`INSERT INTO ${schema}.orders (n) VALUES ($1)`, [n])),
    orders: async () => (await pool.query<{ n: number }>(`SELECT n FROM ${schema}.orders ORDER BY n`)).rows.map((r) => r.n),
    pending: async () => Number((await pool.query<{ c: string }>(`SELECT COUNT(*) AS c FROM ${schema}.outbox`)).rows[0]!.c),
    store: () => postgresOutboxStore({ pool, schema }),
    cleanup: async () => {
      await pool.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      await pool.end();
    },
  };
}

const sender = makeIdentity('Client', 'host', 1, 'c1');
const placeOrder = (n: number, id?: string) => ({
  destination: 'Orders',
  message: buildMessage(PlaceOrder, { n }, { intent: 'send', identity: sender, replyTo: undefined, causedBy: undefined, messageId: id }, DEFAULT_LIMITS),
});

/** A memory transport whose first `failures` dispatches of OrderAccepted fail (a broker that is down). */
function flakyTransport(broker: MemoryBroker, failures: number): Transport {
  const transport = memoryTransport({ broker });
  let left = failures;
  return {
    ...transport,
    admin: transport.admin,
    async dispatch(batch) {
      if (left > 0 && batch.some((o) => 'destination' in o && o.destination === 'Accepted')) {
        left -= 1;
        throw new Error('broker unreachable (test)');
      }
      return transport.dispatch(batch);
    },
  };
}

for (const make of [sqliteBackend, postgresBackend]) {
  const backend = make();
  const suite = backend.skip ? describe.skip : describe;
  suite(`the outbox on ${backend.name}`, () => {
    const endpoints: Endpoint[] = [];
    afterEach(async () => {
      await Promise.all(endpoints.splice(0).map((e) => e.stop()));
    });
    afterAll(() => backend.cleanup());

    async function orders(options: { broker: MemoryBroker; transport?: Transport; outbox: Outbox; handled?: number[] }): Promise<Endpoint> {
      const endpoint = createEndpoint({
        name: 'Orders',
        transport: options.transport ?? memoryTransport({ broker: options.broker }),
        outbox: options.outbox,
        logger: silentLogger,
        routes: { 'Outbox.OrderAccepted': 'Accepted' },
        recoverability: { immediateRetries: 0, delayedRetries: { count: 0 } },
        handlers: [
          handle(PlaceOrder, async (order, ctx) => {
            options.handled?.push(order.n);
            await backend.insert(ctx, order.n);
            await ctx.send(OrderAccepted, { n: order.n });
            if (order.fail) throw new Error(`order ${order.n} failed after its write`);
          }),
        ],
      });
      endpoints.push(endpoint);
      await endpoint.start();
      return endpoint;
    }

    const accepted = async (broker: MemoryBroker) => {
      const t = memoryTransport({ broker });
      await t.open();
      await t.createQueue('Accepted');
      return async () => (await t.admin!.peek('Accepted', { offset: 0, limit: 1000 })).map((m) => (JSON.parse(m.body) as { n: number }).n).sort((a, b) => a - b);
    };

    it("commits the handler's row and its sends together; a throw leaves neither", async () => {
      const broker = new MemoryBroker();
      const read = await accepted(broker);
      const endpoint = await orders({ broker, outbox: await backend.outbox() });
      const before = await backend.orders();
      await endpoint.send(PlaceOrder, { n: 101 }, { to: 'Orders' });
      await endpoint.send(PlaceOrder, { n: 102, fail: true }, { to: 'Orders' });
      const errors = memoryTransport({ broker });
      await errors.open();
      await waitFor(async () => (await errors.admin!.depth('error')) === 1 && (await read()).length === 1, { timeoutMs: 10_000, what: 'one order accepted and one in the error queue' });
      expect(await read()).toEqual([101]);
      expect((await backend.orders()).filter((n) => !before.includes(n))).toEqual([101]);
    });

    it('acknowledges a redelivered message without running the handler again', async () => {
      const broker = new MemoryBroker();
      const read = await accepted(broker);
      const handled: number[] = [];
      await orders({ broker, outbox: await backend.outbox(), handled });
      const input = memoryTransport({ broker });
      await input.open();
      const id = `dup-${randomBytes(4).toString('hex')}`;
      // The same message again after it was handled, as a broker redelivers one whose acknowledgement was lost.
      await input.dispatch([placeOrder(201, id)]);
      await waitFor(async () => (await input.admin!.depth('Orders')) === 0 && (await read()).length === 1, { timeoutMs: 10_000, what: 'the first copy handled' });
      await input.dispatch([placeOrder(201, id)]);
      await waitFor(async () => (await input.admin!.depth('Orders')) === 0, { timeoutMs: 10_000, what: 'the second copy settled' });
      expect(handled).toEqual([201]);
      expect((await backend.orders()).filter((n) => n === 201)).toEqual([201]);
      expect(await read()).toEqual([201]);
    });

    it('two copies handled at the same moment take effect once', async () => {
      const broker = new MemoryBroker();
      const read = await accepted(broker);
      await orders({ broker, outbox: await backend.outbox() });
      const input = memoryTransport({ broker });
      await input.open();
      const id = `twin-${randomBytes(4).toString('hex')}`;
      await input.dispatch([placeOrder(211, id), placeOrder(211, id), placeOrder(211, id)]);
      await waitFor(async () => (await input.admin!.depth('Orders')) === 0 && (await read()).length >= 1, { timeoutMs: 10_000, what: 'the copies settled' });
      // (Their handlers may all have run: only the first commit counts, the others roll back.)
      expect((await backend.orders()).filter((n) => n === 211)).toEqual([211]);
      expect(await read()).toEqual([211]);
    });

    it('endpoint.transaction: writes and sends outside a handler commit together; a throw sends nothing', async () => {
      const broker = new MemoryBroker();
      const read = await accepted(broker);
      const endpoint = await orders({ broker, outbox: await backend.outbox() });
      await endpoint.transaction(async (tx) => {
        await backend.insert(tx, 301);
        await tx.send(OrderAccepted, { n: 301 });
      });
      await expect(
        endpoint.transaction(async (tx) => {
          await backend.insert(tx, 302);
          await tx.send(OrderAccepted, { n: 302 });
          throw new Error('the request failed');
        }),
      ).rejects.toThrow('the request failed');
      await waitFor(async () => (await read()).length === 1, { timeoutMs: 5000, what: 'the committed send' });
      expect(await read()).toEqual([301]);
      expect((await backend.orders()).filter((n) => n === 301 || n === 302)).toEqual([301]);
    });

    it('the durability agent sends a committed record whose dispatch failed, once its claim runs out, exactly once', async () => {
      const broker = new MemoryBroker();
      const read = await accepted(broker);
      const endpoint = await orders({ broker, transport: flakyTransport(broker, 1), outbox: await backend.outbox({ leaseMs: 300, agentPollMs: 50 }) });
      const started = Date.now();
      await endpoint.send(PlaceOrder, { n: 401 }, { to: 'Orders' });
      await waitFor(async () => (await read()).length === 1 && (await backend.pending()) === 0, { timeoutMs: 10_000, what: 'the agent to send the record and remove it' });
      expect(Date.now() - started).toBeGreaterThanOrEqual(300);
      expect(await read()).toEqual([401]);
      expect((await backend.orders()).filter((n) => n === 401)).toEqual([401]);
    });

    it('fences claims: two agents never hold one record, and a stale claimant can neither renew nor remove it', async () => {
      const [a, b] = [backend.store(), backend.store()];
      await a.open();
      await b.open();
      // A claim that ran out before it began: the writer 'died' at once.
      const { records } = await a.transaction('writer', -1000, async (tx) => {
        for (let i = 0; i < 20; i++) await tx.store([placeOrder(500 + i)]);
      });
      expect(records).toHaveLength(20);
      const [claimedByA, claimedByB] = await Promise.all([a.claimExpired('agent-a', 60_000, 20), b.claimExpired('agent-b', 60_000, 20)]);
      const ids = [...claimedByA, ...claimedByB].map((r) => r.id).filter((id) => records.some((r) => r.id === id));
      expect(new Set(ids).size).toBe(ids.length);
      expect(ids).toHaveLength(20);
      // The writer's token is stale now.
      expect(await a.remove(records[0]!)).toBe(false);
      expect(await a.renew(records[0]!, 1000)).toBe(false);
      const mine = [...claimedByA, ...claimedByB].find((r) => r.id === records[0]!.id)!;
      expect(await b.renew(mine, 1000)).toBe(true);
      expect(await b.remove(mine)).toBe(true);
      for (const record of [...claimedByA, ...claimedByB]) await a.remove(record);
      await a.close();
      await b.close();
    });
  });
}
