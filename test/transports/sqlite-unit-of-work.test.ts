/**
 * The unit of work on SQLite: a handler's own rows, the messages it sends and the completion of
 * its message commit together, or none of them do (in-process), and a SIGKILL at any moment
 * leaves no row without its completion and no completion without its row (real processes).
 */
import Database from 'better-sqlite3';
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { buildMessage, DEFAULT_LIMITS } from '../../src/core/envelope.js';
import { ErrorCodes } from '../../src/core/errors.js';
import { makeIdentity } from '../../src/core/identity.js';
import type { Transport } from '../../src/core/transport.js';
import { createEndpoint, defineCommand, handle, silentLogger, type Endpoint } from '../../src/index.js';
import { memoryTransport } from '../../src/memory/index.js';
import { FailureHeaders } from '../../src/recoverability/failure-headers.js';
import { sqliteSession, sqliteTransport } from '../../src/sqlite/index.js';
import { nodeScript } from '../../src/testing/node-script.js';
import { waitFor } from '../../src/testing/wait.js';
import { tempDb, type TempDb } from '../recoverability/fixtures/bus.js';

const PlaceOrder = defineCommand<{ n: number; fail?: 'handler' | 'write' }>('Uow.PlaceOrder');
const OrderAccepted = defineCommand<{ n: number }>('Uow.OrderAccepted');
const sender = makeIdentity('Client', 'host', 1, 'c1');

const dbs: TempDb[] = [];
const endpoints: Endpoint[] = [];
afterEach(async () => {
  await Promise.all(endpoints.splice(0).map((e) => e.stop()));
});
afterAll(() => dbs.forEach((db) => db.cleanup()));

function database(): TempDb {
  const db = tempDb();
  dbs.push(db);
  const direct = new Database(db.file);
  direct.exec('CREATE TABLE orders (n INTEGER NOT NULL, message_id TEXT NOT NULL, note TEXT UNIQUE)');
  direct.close();
  return db;
}

/** What is in the file, read through a connection of its own as an operator's tool would. */
function contents(file: string, transport: Transport) {
  const direct = new Database(file, { readonly: true });
  try {
    const orders = (direct.prepare('SELECT n FROM orders ORDER BY n').pluck().all() as number[]);
    return { orders, read: (queue: string) => transport.admin!.peek(queue, { offset: 0, limit: 10_000 }) };
  } finally {
    direct.close();
  }
}

const numbers = (messages: { body: string }[]) => messages.map((m) => (JSON.parse(m.body) as { n: number }).n).sort((a, b) => a - b);

async function ordersEndpoint(file: string): Promise<Endpoint> {
  const endpoint = createEndpoint({
    name: 'Orders',
    transport: sqliteTransport({ path: file, pollMs: 20 }),
    logger: silentLogger,
    routes: { 'Uow.OrderAccepted': 'Accepted' },
    recoverability: { immediateRetries: 1, delayedRetries: { count: 0 } },
    handlers: [
      handle(PlaceOrder, async (order, ctx) => {
        const session = sqliteSession(ctx);
        // The same unique note twice makes the second write fail when the unit commits.
        session.run('INSERT INTO orders (n, message_id, note) VALUES (?, ?, ?)', order.n, ctx.messageId, order.fail === 'write' ? 'taken' : null);
        await ctx.send(OrderAccepted, { n: order.n });
        if (order.fail === 'handler') throw new Error(`order ${order.n} failed after its write`);
      }),
    ],
  });
  endpoints.push(endpoint);
  await endpoint.start();
  return endpoint;
}

describe('the SQLite unit of work, in process', () => {
  it('commits the handler row, its sends and the completion together; a throw rolls back all three', async () => {
    const db = database();
    const endpoint = await ordersEndpoint(db.file);
    const admin = sqliteTransport({ path: db.file });
    await admin.open();
    await admin.createQueue('Accepted');
    await endpoint.send(PlaceOrder, { n: 1 }, { to: 'Orders' });
    await endpoint.send(PlaceOrder, { n: 2, fail: 'handler' }, { to: 'Orders' });
    const failed = await waitFor(async () => {
      const errors = await admin.admin!.peek('error', { offset: 0, limit: 10 }).catch(() => []);
      return errors.length === 1 && errors;
    }, { timeoutMs: 10_000, what: 'the failing order to reach the error queue' });
    await waitFor(async () => (await admin.admin!.depth('Orders')) === 0, { timeoutMs: 10_000, what: 'Orders to drain' });
    const c = contents(db.file, admin);
    expect(c.orders).toEqual([1]);
    expect(numbers(await c.read('Accepted'))).toEqual([1]);
    expect(numbers(failed)).toEqual([2]);
    await admin.close();
  });

  it('a queued write that fails at commit fails only its own message, whose unit rolls back whole', async () => {
    const db = database();
    const direct = new Database(db.file);
    direct.prepare("INSERT INTO orders (n, message_id, note) VALUES (0, 'seed', 'taken')").run();
    direct.close();
    const endpoint = await ordersEndpoint(db.file);
    const admin = sqliteTransport({ path: db.file });
    await admin.open();
    await admin.createQueue('Accepted');
    // Sent together, so their completions share one group commit.
    await Promise.all([
      endpoint.send(PlaceOrder, { n: 1 }, { to: 'Orders' }),
      endpoint.send(PlaceOrder, { n: 2, fail: 'write' }, { to: 'Orders' }),
      endpoint.send(PlaceOrder, { n: 3 }, { to: 'Orders' }),
    ]);
    const failed = await waitFor(async () => {
      const errors = await admin.admin!.peek('error', { offset: 0, limit: 10 }).catch(() => []);
      return errors.length === 1 && errors;
    }, { timeoutMs: 10_000, what: 'the order whose write fails to reach the error queue' });
    await waitFor(async () => (await admin.admin!.depth('Orders')) === 0, { timeoutMs: 10_000, what: 'Orders to drain' });
    const c = contents(db.file, admin);
    expect(c.orders).toEqual([0, 1, 3]);
    expect(numbers(await c.read('Accepted'))).toEqual([1, 3]);
    expect(numbers(failed)).toEqual([2]);
    expect(failed[0]!.headers[FailureHeaders.ExceptionCode]).toBe(ErrorCodes.UNIT_OF_WORK_FAILED);
    expect(failed[0]!.headers[FailureHeaders.ExceptionMessage]).toContain('UNIQUE constraint failed');
    await admin.close();
  });

  it('sqliteSession on another transport is a coded error that names the fix', async () => {
    const bus = memoryTransport();
    let thrown: unknown;
    const endpoint = createEndpoint({
      name: 'Orders',
      transport: bus,
      logger: silentLogger,
      recoverability: { immediateRetries: 0, delayedRetries: { count: 0 } },
      handlers: [
        handle(PlaceOrder, (_order, ctx) => {
          try {
            sqliteSession(ctx);
          } catch (error) {
            thrown = error;
          }
        }),
      ],
    });
    endpoints.push(endpoint);
    await endpoint.start();
    await endpoint.send(PlaceOrder, { n: 1 }, { to: 'Orders' });
    await waitFor(() => thrown !== undefined, { timeoutMs: 5000, what: 'the handler to run' });
    expect(thrown).toMatchObject({ code: ErrorCodes.NO_UNIT_OF_WORK, fix: expect.stringContaining('sqliteTransport') });
  });
});

describe('the SQLite unit of work under SIGKILL (real processes)', () => {
  const children = new Set<ChildProcess>();
  afterAll(() => children.forEach((child) => child.kill('SIGKILL')));
  const script = nodeScript('./fixtures/unit-of-work-endpoint.ts', import.meta.url);

  function start(file: string, env: Record<string, string> = {}): { child: ChildProcess; line: (wanted: string) => Promise<void> } {
    const child = spawn(process.execPath, [...script.execArgv, script.script], {
      env: { ...process.env, SWITCHYARD_SQLITE_PATH: file, ...env },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    children.add(child);
    child.once('exit', () => children.delete(child));
    const lines = createInterface({ input: child.stdout! });
    const line = (wanted: string) =>
      new Promise<void>((resolve, reject) => {
        lines.on('line', (l) => l === wanted && resolve());
        child.once('exit', (code) => reject(new Error(`the endpoint exited (${code}) before printing "${wanted}"`)));
      });
    return { child, line };
  }

  const kill = (child: ChildProcess) => {
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGKILL');
    return exited;
  };

  async function place(transport: Transport, from: number, count: number): Promise<void> {
    const batch = Array.from({ length: count }, (_, i) => ({
      destination: 'Orders',
      message: buildMessage(PlaceOrder, { n: from + i }, { intent: 'send', identity: sender, replyTo: undefined, causedBy: undefined }, DEFAULT_LIMITS),
    }));
    await transport.dispatch(batch);
  }

  /** Each order is in exactly one state: waiting (no row, no acceptance) or done (one row, one acceptance). */
  async function expectEachOnce(file: string, transport: Transport, sent: number, when: string) {
    const c = contents(file, transport);
    const waiting = numbers(await c.read('Orders'));
    const accepted = numbers(await c.read('Accepted'));
    expect(accepted, `${when}: every acceptance has its row and no row is doubled`).toEqual(c.orders);
    expect([...waiting, ...c.orders].sort((a, b) => a - b), `${when}: each order is waiting or done, once`).toEqual(Array.from({ length: sent }, (_, n) => n));
    return { waiting, done: c.orders };
  }

  it('a kill between the handler write and the completion leaves neither; a kill mid-stream splits nothing', async () => {
    const db = database();
    const transport = sqliteTransport({ path: db.file });
    await transport.open();
    for (const q of ['Orders', 'Accepted', 'error']) await transport.createQueue(q);

    // Between the write and the completion, deterministically: the handler of order 0 hangs after queuing its row.
    await place(transport, 0, 1);
    const hanging = start(db.file, { SWITCHYARD_HANG_ON: '0' });
    await hanging.line('wrote 0');
    await kill(hanging.child);
    expect(await expectEachOnce(db.file, transport, 1, 'after the kill mid-handler')).toEqual({ waiting: [0], done: [] });

    // At whatever moment a stream of orders is at: each kill lands after some orders committed.
    let sent = 1;
    for (let round = 0; round < 6; round++) {
      await place(transport, sent, 100);
      sent += 100;
      const before = contents(db.file, transport).orders.length;
      const running = start(db.file);
      await running.line('started');
      await waitFor(() => contents(db.file, transport).orders.length > before, { timeoutMs: 10_000, what: 'some orders to commit' });
      await kill(running.child);
      await expectEachOnce(db.file, transport, sent, `after kill ${round + 1}`);
    }

    const survivor = start(db.file);
    await survivor.line('started');
    await waitFor(async () => (await transport.admin!.depth('Orders')) === 0, { timeoutMs: 20_000, what: 'every order to be handled' });
    await kill(survivor.child);
    expect((await expectEachOnce(db.file, transport, sent, 'at the end')).done).toHaveLength(sent);
    await transport.close();
  });
});
