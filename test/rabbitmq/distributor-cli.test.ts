/**
 * `switchyard distributor` on RabbitMQ, with the store flags and environment variable the
 * `errors` commands take: run declares its queues and forwards, status reads the queue depths
 * (on RabbitMQ the distributor keeps its workers in its own process, and status says so).
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { waitFor } from '../../src/testing/wait.js';
import { repoRoot, runCli } from '../recoverability/fixtures/bus.js';
import { deleteTopology, describeOnBroker, rabbit, uniquePrefix } from './fixtures/broker.js';

describeOnBroker('switchyard distributor on RabbitMQ (CLI process)', () => {
  const endpoint = `${uniquePrefix('dcli')}Shipping`;
  afterAll(async () => {
    await deleteTopology({ queues: [endpoint, `${endpoint}.distributor`] });
  });

  it('runs from SWITCHYARD_CLI_RABBITMQ_URL, and status shows its queues without claiming to know its workers', async () => {
    const before = await runCli(['distributor', 'status', '--endpoint', endpoint, '--json', '--rabbitmq', rabbit.url]);
    expect(before.code, before.stderr).toBe(0);
    expect(JSON.parse(before.stdout)).toMatchObject({ workersRecorded: false, dataQueue: { address: endpoint, depth: 0 }, workers: [] });

    const child = spawn(process.execPath, ['--import', 'tsx', path.join(repoRoot, 'src/cli/main.ts'), 'distributor', '--endpoint', endpoint], {
      cwd: repoRoot,
      env: { ...process.env, SWITCHYARD_SQLITE_PATH: '', SWITCHYARD_CLI_RABBITMQ_URL: rabbit.url },
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    try {
      await waitFor(() => output.includes(`distributing ${endpoint}`), { timeoutMs: 20_000, what: `the distributor to start (output so far: ${output})` });
      expect(output).toContain('(from SWITCHYARD_CLI_RABBITMQ_URL)');
      expect(output).toContain('workers and ready slots live in this process');
      const status = await runCli(['distributor', 'status', '--endpoint', endpoint], { SWITCHYARD_CLI_RABBITMQ_URL: rabbit.url });
      expect(status.code, status.stderr).toBe(0);
      expect(status.stdout).toContain(`control queue ${endpoint}.distributor (0 waiting)`);
      expect(status.stdout).toContain('workers: not recorded on this store');
    } finally {
      child.kill('SIGINT');
    }
    expect(await exited).toBe(0);
  }, 60_000);
});
