/** `switchyard errors ... --postgres <url>`: an operator process against the database a running endpoint uses. */
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { createEndpoint, defineCommand, handle, silentLogger } from '../../src/index.js';
import { postgresTransport } from '../../src/postgres/index.js';
import { waitFor } from '../../src/testing/wait.js';
import { runCli } from '../recoverability/fixtures/bus.js';
import { service } from '../support/services.js';

const { url, skipReason } = await service('postgres');

describe.skipIf(!!skipReason)(`switchyard errors --postgres${skipReason ? ` (skipped: ${skipReason})` : ''}`, () => {
  const schema = `sy_cli_${process.pid}_${Date.now().toString(36)}`;
  const cliUrl = `${url}?schema=${schema}`;
  afterAll(async () => {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await client.end();
  });

  it('lists a failed message and retries it; after the fix it is handled', async () => {
    const Charge = defineCommand<{ n: number }>('Cli.Charge');
    let fixed = false;
    const handled: number[] = [];
    const endpoint = createEndpoint({
      name: 'Billing',
      transport: postgresTransport({ connectionString: url, schema }),
      logger: silentLogger,
      recoverability: { immediateRetries: 0, delayedRetries: { count: 0 } },
      handlers: [
        handle(Charge, ({ n }) => {
          if (!fixed) throw new RangeError(`charge ${n}: card declined`);
          handled.push(n);
        }),
      ],
    });
    await endpoint.start();
    try {
      await endpoint.sendLocal(Charge, { n: 7 });
      const listed = await waitFor(async () => {
        const r = await runCli(['errors', 'list', '--json', '--postgres', cliUrl]);
        return r.code === 0 && (JSON.parse(r.stdout) as { total: number }).total === 1 && r;
      }, { what: 'the failed message in the error queue, as the CLI lists it', timeoutMs: 30_000 });
      expect(listed.stderr).toContain('using postgres');
      const [failed] = (JSON.parse(listed.stdout) as { messages: { id: string; exception?: string }[] }).messages;
      fixed = true;
      const retried = await runCli(['errors', 'retry', failed!.id, '--postgres', cliUrl]);
      expect(retried.code).toBe(0);
      await waitFor(() => handled.includes(7), { what: 'the retried message to be handled' });
    } finally {
      await endpoint.stop();
    }
  }, 60_000);

  it('refuses a database or schema without Switchyard queues instead of creating them', async () => {
    const result = await runCli(['errors', 'list', '--postgres', `${url}?schema=${schema}_missing`]);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toContain(`no Switchyard queues in schema ${schema}_missing`);
  });
});
