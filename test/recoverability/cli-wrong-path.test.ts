/**
 * The CLI pointed at the wrong place, as a new user does it: read-only commands refuse a
 * database that is not there (and create nothing), the distributor commands take the same store
 * flags and environment variables as `errors`, and a store whose error queue does not exist yet
 * lists no failed messages.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sqliteTransport } from '../../src/sqlite/index.js';
import { waitFor } from '../../src/testing/wait.js';
import { repoRoot, runCli, tempDb, type TempDb } from './fixtures/bus.js';

describe('switchyard on a wrong path (CLI process)', () => {
  let db: TempDb;
  let typo: string;

  beforeAll(async () => {
    db = tempDb();
    typo = path.join(path.dirname(db.file), 'nope.db');
    // A store where an endpoint ran with its own queue but no error queue was made yet.
    const transport = sqliteTransport({ path: db.file });
    await transport.open();
    await transport.createQueue('Sales');
    await transport.close();
  });

  afterAll(() => db?.cleanup());

  it('distributor status refuses a missing database and creates none', async () => {
    const status = await runCli(['distributor', 'status', '--endpoint', 'Shipping', '--sqlite', typo]);
    expect(status.code).toBe(1);
    expect(status.stderr).toMatch(/There is no SQLite database at .*nope\.db/);
    expect(status.stderr).toContain('--sqlite <path> or SWITCHYARD_SQLITE_PATH');
    expect(existsSync(typo)).toBe(false);
  });

  it('distributor status and run take the store from the environment like errors does, and refuse to guess', async () => {
    const status = await runCli(['distributor', 'status', '--endpoint', 'Shipping', '--json'], { SWITCHYARD_SQLITE_PATH: db.file });
    expect(status.code, status.stderr).toBe(0);
    expect(status.stderr).toContain(`using sqlite ${db.file} (from SWITCHYARD_SQLITE_PATH)`);
    expect(JSON.parse(status.stdout)).toMatchObject({ endpoint: 'Shipping', workersRecorded: true, workers: [], dataQueue: { address: 'Shipping', depth: 0 } });

    const [runWithout, statusWithout] = await Promise.all([runCli(['distributor', '--endpoint', 'Shipping']), runCli(['distributor', 'status', '--endpoint', 'Shipping'])]);
    for (const result of [runWithout, statusWithout]) {
      expect(result.code).toBe(1);
      expect(result.stderr).toContain('No store given');
      expect(result.stderr).toContain('--sqlite <path> or SWITCHYARD_SQLITE_PATH; --rabbitmq <url> or SWITCHYARD_CLI_RABBITMQ_URL');
    }
  });

  it('distributor run takes its store from the environment, may create the database, and stops on SIGINT', async () => {
    const fresh = path.join(path.dirname(db.file), 'fresh.db');
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(repoRoot, 'src/cli/main.ts'), 'distributor', '--endpoint', 'Shipping'], {
      cwd: repoRoot,
      env: { ...process.env, SWITCHYARD_SQLITE_PATH: fresh },
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    try {
      await waitFor(() => output.includes('distributing Shipping'), { timeoutMs: 20_000, what: `the distributor to start (output so far: ${output})` });
      expect(output).toContain(`using sqlite ${fresh} (from SWITCHYARD_SQLITE_PATH)`);
      const status = await runCli(['distributor', 'status', '--endpoint', 'Shipping', '--json', '--sqlite', fresh]);
      expect(JSON.parse(status.stdout)).toMatchObject({ controlQueue: { address: 'Shipping.distributor', depth: 0 }, workers: [] });
    } finally {
      child.kill('SIGINT');
    }
    expect(await exited).toBe(0);
    expect(output).toContain('stopped after forwarding 0 message(s)');
  });

  it('distributor help lists every store flag', async () => {
    const help = await runCli(['distributor', 'status', '--help']);
    expect(help.stdout).toContain('--sqlite <path>');
    expect(help.stdout).toContain('--rabbitmq <url>');
    expect(help.stdout).toContain('SWITCHYARD_SQLITE_PATH');
  });

  it('errors list on a store with no error queue yet prints an empty list and exits 0', async () => {
    const [text, json] = await Promise.all([runCli(['errors', 'list', '--sqlite', db.file]), runCli(['errors', 'list', '--json', '--sqlite', db.file])]);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/^0 failed messages in error \(sqlite /);
    expect(text.stdout).toContain('there is no queue error yet: an endpoint creates it when it starts; queues there: Sales');
    expect(json.code, json.stderr).toBe(0);
    expect(JSON.parse(json.stdout)).toMatchObject({ errorQueue: 'error', total: 0, messages: [] });
  });
});
