/**
 * A PostgreSQL restart mid-run, on a private cluster this file starts on its own port and data
 * directory (test/transports/fixtures/private-postgres.ts), never the shared server: the endpoint
 * keeps running in the same process, and every message whose send was acknowledged is handled.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEndpoint, defineCommand, handle, silentLogger } from '../../src/index.js';
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
});
