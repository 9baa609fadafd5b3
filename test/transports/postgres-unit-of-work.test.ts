/**
 * What the PostgreSQL transport promises beyond the conformance suite: the unit of work (a
 * handler's own SQL commits with the completion and its sends, and rolls back with a throw or a
 * lost lease), LISTEN/NOTIFY wake-ups and the polling fallback behind them, and migrations.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEndpoint, defineCommand, ErrorCodes, handle, silentLogger } from '../../src/index.js';
import { postgresClient, postgresTransport } from '../../src/postgres/index.js';
import type { Transport, TransportMessage } from '../../src/core/transport.js';
import { uuidv7 } from '../../src/core/ids.js';
import { waitFor } from '../../src/testing/wait.js';
import { service } from '../support/services.js';

const { url, skipReason } = await service('postgres');
const signal = new AbortController().signal;

function message(body: unknown = {}): TransportMessage {
  const id = uuidv7();
  return { id, headers: { 'sy1-message-id': id }, body: JSON.stringify(body) };
}

describe.skipIf(!!skipReason)(`postgres transport: unit of work, wake-ups, migrations${skipReason ? ` (skipped: ${skipReason})` : ''}`, () => {
  const schema = `sy_uow_${process.pid}_${Date.now().toString(36)}`;
  const admin = new pg.Pool({ connectionString: url, max: 2 });
  const transports: Transport[] = [];
  const make = (options: { leaseMs?: number; pollMs?: number; schema?: string } = {}) => {
    const t = postgresTransport({ connectionString: url, schema, maxConnections: 4, ...options });
    transports.push(t);
    return t;
  };
  const orders = async () => (await admin.query<{ id: string }>(`SELECT id FROM "${schema}".orders ORDER BY id`)).rows.map((r) => r.id);

  beforeAll(async () => {
    await make().open();
    await admin.query(`CREATE TABLE "${schema}".orders (id text PRIMARY KEY)`);
  });
  afterAll(async () => {
    for (const t of transports) await t.close();
    await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await admin.end();
  });

  const PlaceOrder = defineCommand<{ id: string; failFirst?: boolean }>('Uow.PlaceOrder');
  const Ship = defineCommand<{ id: string }>('Uow.Ship');

  it("commits a handler's own SQL, its sends and the completion together; a throw rolls the SQL back", async () => {
    const name = `Uow${Date.now().toString(36)}`;
    const transport = make();
    const attempts = new Map<string, number>();
    const endpoint = createEndpoint({
      name,
      transport,
      logger: silentLogger,
      routes: { 'Uow.PlaceOrder': name, 'Uow.Ship': `${name}.shipping` },
      messages: [Ship],
      recoverability: { immediateRetries: 3, delayedRetries: { count: 0 } },
      handlers: [
        handle(PlaceOrder, async (order, ctx) => {
          const n = (attempts.get(order.id) ?? 0) + 1;
          attempts.set(order.id, n);
          const db = await postgresClient(ctx);
          await db.query(`INSERT INTO "${schema}".orders (id) VALUES ($1)`, [`${order.id}-attempt-${n}`]);
          await ctx.send(Ship, { id: order.id });
          if (order.failFirst && n === 1) throw new Error('the first attempt fails after its write and its send');
        }),
      ],
    });
    await endpoint.start();
    try {
      await transport.createQueue(`${name}.shipping`);
      await endpoint.send(PlaceOrder, { id: 'a' });
      await endpoint.send(PlaceOrder, { id: 'b', failFirst: true });
      await waitFor(async () => (await transport.admin!.depth(`${name}.shipping`)) === 2 && (await transport.admin!.depth(name)) === 0, {
        what: 'both orders to be handled',
      });
      // b's first attempt wrote and sent, then threw: neither its row nor its Ship exists.
      expect(await orders()).toEqual(['a-attempt-1', 'b-attempt-2']);
      const shipped = await transport.admin!.peek(`${name}.shipping`, { offset: 0, limit: 10 });
      expect(shipped.map((m) => JSON.parse(m.body).id).sort()).toEqual(['a', 'b']);
    } finally {
      await endpoint.stop();
    }
  });

  it("a stale holder's completion fails SY_ERR_LEASE_LOST and rolls back its own SQL and its sends", async () => {
    const queue = `uow-fenced-${Date.now().toString(36)}`;
    const out = `${queue}-out`;
    const first = make({ leaseMs: 60_000 });
    const second = make({ leaseMs: 60_000 });
    await first.open();
    await second.open();
    await first.createQueue(queue);
    await first.createQueue(out);
    await first.dispatch([{ destination: queue, message: message() }]);
    const [stale] = await first.receive(queue, { max: 1, waitMs: 2000, signal });
    const db = await postgresClient({ unitOfWork: stale!.session });
    await db.query(`INSERT INTO "${schema}".orders (id) VALUES ('stale-write')`);
    // The lease runs out while the holder is paused; another consumer takes the message.
    await admin.query(`UPDATE "${schema}".messages SET visible_at = 0 WHERE queue = $1`, [queue]);
    const [fresh] = await second.receive(queue, { max: 1, waitMs: 2000, signal });
    expect(fresh!.message.id).toBe(stale!.message.id);

    const failed = await stale!.complete([{ destination: out, message: message() }]).catch((e: { code?: string }) => e.code);
    expect(failed).toBe(ErrorCodes.LEASE_LOST);
    expect(await orders()).not.toContain('stale-write');
    expect(await first.admin!.depth(out)).toBe(0);
    await fresh!.complete();
    expect(await first.admin!.depth(queue)).toBe(0);
  });

  it('more handlers holding a unit of work than pool connections still settle (a completion never waits for a second connection)', async () => {
    const name = `UowPool${Date.now().toString(36)}`;
    const transport = make({ schema });
    const small = postgresTransport({ connectionString: url, schema, maxConnections: 2 });
    transports.push(small);
    const Audit = defineCommand<{ n: number }>('UowPool.Audit');
    const Record = defineCommand<{ n: number }>('UowPool.Record');
    const endpoint = createEndpoint({
      name,
      transport: small,
      logger: silentLogger,
      concurrency: 8,
      routes: { 'UowPool.Record': name, 'UowPool.Audit': `${name}.audit` },
      messages: [Audit],
      handlers: [
        handle(Record, async ({ n }, ctx) => {
          const db = await postgresClient(ctx);
          await db.query(`INSERT INTO "${schema}".orders (id) VALUES ($1)`, [`${name}-${n}`]);
          await ctx.send(Audit, { n });
        }),
      ],
    });
    await endpoint.start();
    try {
      // Created by another transport, so the endpoint's first completions must look the destination up.
      await transport.open();
      await transport.createQueue(`${name}.audit`);
      await Promise.all(Array.from({ length: 24 }, (_, n) => endpoint.send(Record, { n })));
      await waitFor(async () => (await small.admin!.depth(`${name}.audit`)) === 24, { what: 'all 24 messages settled', timeoutMs: 15_000 });
      expect((await orders()).filter((id) => id.startsWith(`${name}-`))).toHaveLength(24);
    } finally {
      await endpoint.stop();
    }
  }, 30_000);

  it('postgresClient outside a PostgreSQL unit of work fails SY_ERR_NO_UNIT_OF_WORK and says why', async () => {
    await expect(postgresClient({ unitOfWork: undefined })).rejects.toMatchObject({ code: ErrorCodes.NO_UNIT_OF_WORK });
    await expect(postgresClient({ unitOfWork: { storage: 'sqlite', discard: () => undefined } })).rejects.toThrow(/on sqlite/);
  });

  it('wakes a waiting receiver by NOTIFY, long before its fallback poll', async () => {
    const queue = `uow-notify-${Date.now().toString(36)}`;
    const receiver = make({ pollMs: 20_000 });
    const sender = make();
    await receiver.open();
    await sender.open();
    await receiver.createQueue(queue);
    const started = Date.now();
    const receiving = receiver.receive(queue, { max: 1, waitMs: 20_000, signal });
    setTimeout(() => void sender.dispatch([{ destination: queue, message: message() }]), 100);
    const got = await receiving;
    expect(got).toHaveLength(1);
    expect(Date.now() - started).toBeLessThan(5000);
    await got[0]!.complete();
  });

  it('receives a message that came without a notification (written by another tool) by the fallback poll', async () => {
    const queue = `uow-poll-${Date.now().toString(36)}`;
    const receiver = make({ pollMs: 200 });
    await receiver.open();
    await receiver.createQueue(queue);
    const started = Date.now();
    const receiving = receiver.receive(queue, { max: 1, waitMs: 20_000, signal });
    setTimeout(() => {
      const m = message();
      void admin.query(`INSERT INTO "${schema}".messages (queue, id, headers, body, visible_at) VALUES ($1, $2, $3, $4, 0)`, [queue, m.id, JSON.stringify(m.headers), m.body]);
    }, 100);
    const got = await receiving;
    expect(got).toHaveLength(1);
    expect(Date.now() - started).toBeLessThan(5000);
    await got[0]!.complete();
  });

  it('migrates a new schema once when many processes start at the same time, and refuses a schema newer than it knows', async () => {
    const fresh = `${schema}_mig`;
    try {
      const racers = Array.from({ length: 6 }, () => make({ schema: fresh }));
      await Promise.all(racers.map((t) => t.open()));
      const rows = await admin.query(`SELECT component, version FROM "${fresh}".schema_versions`);
      expect(rows.rows).toEqual([{ component: 'transport', version: 1 }]);

      await admin.query(`INSERT INTO "${fresh}".schema_versions (component, version, breaking) VALUES ('transport', 99, true)`);
      await expect(make({ schema: fresh }).open()).rejects.toMatchObject({ code: ErrorCodes.SCHEMA_TOO_NEW });
    } finally {
      await admin.query(`DROP SCHEMA IF EXISTS "${fresh}" CASCADE`);
    }
  });

  it('refuses bad options with SY_ERR_CONFIG naming them', async () => {
    expect(() => postgresTransport({ schema: 'x' })).toThrow(/connectionString or a pool/);
    expect(() => postgresTransport({ connectionString: url, schema: 'Bad-Name' })).toThrow(/schema/);
    await expect(postgresTransport({ connectionString: url, schema, leaseMs: 0 }).open()).rejects.toMatchObject({ code: ErrorCodes.CONFIG });
  });
});
