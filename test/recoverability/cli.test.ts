/**
 * `switchyard errors` as an operator runs it: a separate process against the SQLite file that a
 * running endpoint uses.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeIdentity } from '../../src/core/identity.js';
import type { Transport } from '../../src/core/transport.js';
import { createEndpoint, defineCommand, failedMessages, handle, silentLogger, type Endpoint } from '../../src/index.js';
import { errorQueueHeaders, FailureHeaders } from '../../src/recoverability/failure-headers.js';
import { sqliteTransport } from '../../src/sqlite/index.js';
import { waitFor } from '../../src/testing/wait.js';
import { runCli, tempDb, type TempDb } from './fixtures/bus.js';

const PlaceOrder = defineCommand<{ orderId: number }>('Sales.PlaceOrder');

describe('switchyard errors (CLI process)', () => {
  let db: TempDb;
  let sales: Endpoint;
  let inspector: Transport;
  let fixed = false;
  const handled: { orderId: number; messageId: string; retryCount: string | undefined }[] = [];

  beforeAll(async () => {
    db = tempDb();
    sales = createEndpoint({
      name: 'Sales',
      transport: sqliteTransport({ path: db.file }),
      logger: silentLogger,
      recoverability: { immediateRetries: 1, delayedRetries: { count: 1, incrementMs: 100 } },
      handlers: [
        handle(PlaceOrder, (order, ctx) => {
          if (!fixed) throw new RangeError(`order ${order.orderId}: price out of range`);
          handled.push({ orderId: order.orderId, messageId: ctx.messageId, retryCount: ctx.headers[FailureHeaders.RetryCount] });
        }),
      ],
    });
    await sales.start();
    inspector = sqliteTransport({ path: db.file });
    await inspector.open();
  });

  afterAll(async () => {
    await sales?.stop();
    await inspector?.close();
    db?.cleanup();
  });

  const flags = () => ['--sqlite', db.file];

  it('lists, shows and retries a poison message; after the fix it is handled once', async () => {
    await sales.sendLocal(PlaceOrder, { orderId: 1 });
    await sales.sendLocal(PlaceOrder, { orderId: 2 });
    const errors = failedMessages(inspector);
    const page = await waitFor(async () => {
      const p = await errors.list();
      return p.total === 2 && p;
    }, { what: 'two messages in the error queue' });
    const [first, second] = page.messages.map((m) => m.id);

    const list = await runCli(['errors', 'list', ...flags()]);
    expect(list.code, list.stderr).toBe(0);
    expect(list.stderr).toContain(`using sqlite ${path.resolve(db.file)} (from --sqlite)`);
    expect(list.stdout).toMatch(/^2 failed messages in error \(sqlite /);
    expect(list.stdout).toContain(first);
    expect(list.stdout).toMatch(/TRIED/);
    expect(list.stdout).toMatch(/Sales\.PlaceOrder\s+2 times after 1 delayed retry\s+RangeError: order \d: price out of range/);

    const one = await runCli(['errors', 'list', '--type', 'Sales.*', '--exception', 'order 2', ...flags()]);
    expect(one.stdout).toMatch(/^1 failed message in error matching --type "Sales\.\*" --exception "order 2" \(sqlite /);

    const json = await runCli(['errors', 'list', '--json', '--exception', 'order 2'], { SWITCHYARD_SQLITE_PATH: db.file });
    expect(json.stderr).toContain('(from SWITCHYARD_SQLITE_PATH)');
    const listed = JSON.parse(json.stdout) as { total: number; messages: { id: string; failedQueue: string; delayedRetries: number }[] };
    expect(listed.total).toBe(1);
    expect(listed.messages[0]).toMatchObject({ id: second, failedQueue: 'Sales', delayedRetries: 1 });

    const show = await runCli(['errors', 'show', first!, ...flags()]);
    expect(show.code, show.stderr).toBe(0);
    expect(show.stdout).toMatch(/exception\s+RangeError: order 1: price out of range/);
    expect(show.stdout).toContain('"orderId":1');
    expect(show.stdout).toMatch(/stack\nRangeError/);

    fixed = true;
    const retry = await runCli(['errors', 'retry', first!, ...flags()]);
    expect(retry.code, retry.stdout + retry.stderr).toBe(0);
    expect(retry.stdout).toContain(`retried   ${first} -> Sales`);
    await waitFor(() => handled.length === 1, { what: 'the retried order to be handled' });
    expect(handled[0]).toEqual({ orderId: 1, messageId: first, retryCount: '1' });

    const again = await runCli(['errors', 'retry', first!, ...flags()]);
    expect(again.code).toBe(1);
    expect(again.stdout).toContain(`not found ${first}`);
    expect((await errors.list()).messages.map((m) => m.id)).toEqual([second]);
    expect(await inspector.admin!.depth('Sales')).toBe(0);
    expect(handled).toHaveLength(1);
  });

  it('keeps a message whose queue no longer exists and says which queue, while retrying the rest', async () => {
    const errors = failedMessages(inspector);
    const orphan = {
      id: 'orphan-1',
      headers: errorQueueHeaders(
        { 'sy1-message-id': 'orphan-1', 'sy1-enclosed-types': 'Sales.PlaceOrder' },
        { error: new Error('boom'), reason: 'test', failedQueue: 'Retired.Queue', identity: makeIdentity('Retired', 'h', 1, 'x'), attempts: 1, now: new Date() },
      ),
      body: '{"orderId":3}',
    };
    await inspector.dispatch([{ destination: 'error', message: orphan }]);
    const before = handled.length;
    const result = await runCli(['errors', 'retry', '--all', '--json', ...flags()]);
    expect(result.code).toBe(1);
    const { outcomes } = JSON.parse(result.stdout) as { outcomes: { id: string; status: string; queue?: string; error?: { code: string; message: string } }[] };
    const byId = Object.fromEntries(outcomes.map((o) => [o.id, o]));
    expect(byId['orphan-1']).toMatchObject({ status: 'failed', queue: 'Retired.Queue', error: { code: 'SY_ERR_QUEUE_NOT_FOUND' } });
    expect(byId['orphan-1']!.error!.message).toContain('Retired.Queue');
    expect(outcomes.filter((o) => o.status === 'retried')).toHaveLength(1);
    await waitFor(() => handled.length === before + 1, { what: 'the other message to be handled' });
    expect((await errors.list()).messages.map((m) => m.id)).toEqual(['orphan-1']);

    const deleted = await runCli(['errors', 'delete', 'orphan-1', ...flags()]);
    expect(deleted.stdout).toContain('deleted   orphan-1');
    expect((await errors.list()).total).toBe(0);
  });

  it('refuses to guess the store or the ids, and never creates an empty database', async () => {
    const [none, missing, notFound, noIds] = await Promise.all([
      runCli(['errors', 'list']),
      runCli(['errors', 'list', '--sqlite', path.join(path.dirname(db.file), 'typo.db')]),
      runCli(['errors', 'show', 'no-such-id', ...flags()]),
      runCli(['errors', 'retry', ...flags()]),
    ]);
    expect(none.code).toBe(1);
    expect(none.stderr).toContain('--sqlite <path> or SWITCHYARD_SQLITE_PATH');
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/There is no SQLite database at .*typo\.db/);
    expect(existsSync(path.join(path.dirname(db.file), 'typo.db'))).toBe(false);
    expect(notFound.code).toBe(1);
    expect(notFound.stderr).toContain('No message no-such-id in error');
    expect(noIds.code).toBe(1);
    expect(noIds.stderr).toContain('No ids given');
  });
});
