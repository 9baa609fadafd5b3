/**
 * A PostgreSQL restart mid-run, on a private cluster this file starts on its own port and data
 * directory (test/transports/fixtures/private-postgres.ts), never the shared server: the endpoint
 * keeps running in the same process, and every message whose send was acknowledged is handled.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEndpoint, defineCommand, ErrorCodes, handle, silentLogger } from '../../src/index.js';
import { postgresTransport } from '../../src/postgres/index.js';
import { waitFor } from '../../src/testing/wait.js';
import { privatePostgresSkipReason, startPrivatePostgres, type PrivatePostgres } from './fixtures/private-postgres.js';

describe.skipIf(!!privatePostgresSkipReason)(`postgres transport: database restart${privatePostgresSkipReason ? ` (skipped: ${privatePostgresSkipReason})` : ''}`, () => {
  let cluster: PrivatePostgres;
  beforeAll(async () => {
    cluster = await startPrivatePostgres();
  }, 60_000);
  afterAll(async () => {
    await cluster?.stop();
  });

  it('loses no acknowledged message across a restart and resumes receiving without a process restart', async () => {
    const Work = defineCommand<{ n: number }>('Restart.Work');
    const handled = new Set<number>();
    const receiver = createEndpoint({
      name: 'Restart',
      transport: postgresTransport({ connectionString: cluster.url, pollMs: 200 }),
      logger: silentLogger,
      concurrency: 4,
      handlers: [handle(Work, async ({ n }) => void handled.add(n))],
    });
    const sender = createEndpoint({
      name: 'RestartSender',
      sendOnly: true,
      transport: postgresTransport({ connectionString: cluster.url }),
      logger: silentLogger,
      routes: { 'Restart.*': 'Restart' },
      messages: [Work],
    });
    await receiver.start();
    await sender.start();
    const acknowledged: number[] = [];
    let failedSends = 0;
    let next = 0;
    let sending = true;
    // Sends one message at a time; a send that fails (the database is down) is sent again.
    const sendLoop = (async () => {
      while (sending) {
        try {
          await sender.send(Work, { n: next });
          acknowledged.push(next++);
        } catch {
          failedSends++;
          await new Promise((r) => setTimeout(r, 50));
        }
      }
    })();
    try {
      await waitFor(() => handled.size >= 50, { what: '50 messages handled before the restart', timeoutMs: 20_000 });
      await cluster.stopServer();
      const duringOutage = acknowledged.length;
      await waitFor(() => failedSends > 0, { what: 'a send to fail while the database is down', timeoutMs: 10_000 });
      await cluster.startServer();
      await waitFor(() => acknowledged.length >= duringOutage + 50, { what: '50 more sends acknowledged after the restart', timeoutMs: 30_000 });
      sending = false;
      await sendLoop;
      await waitFor(() => acknowledged.every((n) => handled.has(n)), { what: 'every acknowledged message to be handled', timeoutMs: 30_000 }).catch(() => undefined);
      expect(acknowledged.filter((n) => !handled.has(n))).toEqual([]);
      expect(receiver.status).toBe('running');
    } finally {
      sending = false;
      await sendLoop;
      await sender.stop();
      await receiver.stop();
    }
  }, 120_000);

  it('a claim undone by a server crash is never handed to a second consumer with the same token', async () => {
    // Claims commit without waiting for the WAL flush, so a crash can undo one its holder already
    // has. Simulated here: after the restart the row's token is set back to what it was before
    // that claim. The next claim must still get a token the stale holder does not have.
    const first = postgresTransport({ connectionString: cluster.url, schema: 'fencing', leaseMs: 60_000 });
    const second = postgresTransport({ connectionString: cluster.url, schema: 'fencing', leaseMs: 60_000 });
    const signal = new AbortController().signal;
    try {
      await first.open();
      await first.createQueue('work');
      await first.createQueue('out');
      await first.dispatch([{ destination: 'work', message: { id: 'm1', headers: { 'sy1-message-id': 'm1' }, body: '{}' } }]);
      const [stale] = await first.receive('work', { max: 1, waitMs: 5000, signal });
      expect(stale).toBeDefined();
      await cluster.stopServer();
      await cluster.startServer();
      const admin = new pg.Client({ connectionString: cluster.url });
      await admin.connect();
      await admin.query("UPDATE fencing.messages SET lease_token = lease_token - 1, visible_at = 0 WHERE queue = 'work'");
      await admin.end();
      await second.open();
      const [fresh] = await second.receive('work', { max: 1, waitMs: 5000, signal });
      expect(fresh?.message.id).toBe('m1');
      const outcome = await stale!
        .complete([{ destination: 'out', message: { id: 'stale', headers: { 'sy1-message-id': 'stale' }, body: '{}' } }])
        .then(() => 'completed', (error: { code?: string }) => error.code);
      expect(outcome).toBe(ErrorCodes.LEASE_LOST);
      expect(await second.admin!.depth('out')).toBe(0);
      await fresh!.complete();
    } finally {
      await first.close();
      await second.close();
    }
  }, 60_000);
});
