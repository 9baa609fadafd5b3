/**
 * recoverability.*: the cost of the failure path on the embedded SQLite transport (synchronous
 * = full), each next to a baseline measured in the same run. Queues are filled first, so the
 * numbers are processing only:
 * - recoverability.error-move: messages whose handler throws UnrecoverableError, each moved to
 *   the error queue (complete + copy with failure headers, one transaction), against the same
 *   endpoint handling the same messages successfully.
 * - recoverability.retry-all: `failedMessages().retryAll()` returning every message of a full
 *   error queue to its queue (a take with a replacement per id), against QueueAdmin.moveAll
 *   moving the same number of rows with one UPDATE (no per-message headers, the floor).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createEndpoint, defineCommand, failedMessages, handle, silentLogger, UnrecoverableError } from '../../src/index.js';
import { buildMessage, DEFAULT_LIMITS } from '../../src/core/envelope.js';
import { makeIdentity } from '../../src/core/identity.js';
import { sqliteTransport } from '../../src/sqlite/index.js';
import { waitFor } from '../../src/testing/wait.js';
import type { BenchResult, BenchSuite } from '../types.js';

const MESSAGES = 5_000;
const Job = defineCommand<{ n: number; payload: string }>('Bench.Job');
const settings = { synchronous: 'full', bodyBytes: 200, concurrency: 16 };

function tempDb(): { file: string; done: () => void } {
  const dir = mkdtempSync(path.join(tmpdir(), 'sy-bench-recov-'));
  return { file: path.join(dir, 'bench.db'), done: () => rmSync(dir, { recursive: true, force: true }) };
}

/**
 * Fills the Sales queue with MESSAGES jobs (batches of 500), then times an endpoint from start
 * until the queue is empty; returns messages per second.
 */
async function drain(file: string, fail: boolean): Promise<number> {
  const probe = sqliteTransport({ path: file });
  await probe.open();
  for (const q of ['Sales', 'error']) await probe.createQueue(q);
  const identity = makeIdentity('Bench', 'host', 1, 'b1');
  const payload = 'x'.repeat(settings.bodyBytes);
  for (let n = 0; n < MESSAGES; n += 500) {
    await probe.dispatch(
      Array.from({ length: 500 }, (_, i) => ({
        destination: 'Sales',
        message: buildMessage(Job, { n: n + i, payload }, { intent: 'send', identity, replyTo: undefined, causedBy: undefined }, DEFAULT_LIMITS),
      })),
    );
  }
  const endpoint = createEndpoint({
    name: 'Sales',
    transport: sqliteTransport({ path: file }),
    logger: silentLogger,
    concurrency: settings.concurrency,
    handlers: [
      handle(Job, () => {
        if (fail) throw new UnrecoverableError('bench: always fails');
      }),
    ],
  });
  const started = performance.now();
  await endpoint.start();
  await waitFor(async () => (await probe.admin!.depth('Sales')) === 0, { timeoutMs: 120_000, intervalMs: 5 });
  const seconds = (performance.now() - started) / 1000;
  await endpoint.stop();
  await probe.close();
  return MESSAGES / seconds;
}

async function retryAll(file: string): Promise<{ retried: number; moved: number }> {
  const transport = sqliteTransport({ path: file });
  await transport.open();
  const errors = failedMessages(transport);
  let started = performance.now();
  const outcomes = await errors.retryAll();
  const retried = outcomes.filter((o) => o.status === 'retried').length / ((performance.now() - started) / 1000);
  if (outcomes.length !== MESSAGES) throw new Error(`retryAll returned ${outcomes.length} outcomes, expected ${MESSAGES}`);
  started = performance.now();
  const count = await transport.admin!.moveAll('Sales', 'error', { includeLeased: true });
  const moved = count / ((performance.now() - started) / 1000);
  await transport.close();
  return { retried, moved };
}

function row(name: string, msgsPerSec: number, baseline: string, baselineMsgsPerSec: number): BenchResult {
  return { name, transport: 'sqlite', messages: MESSAGES, msgsPerSec, p50Ms: null, p99Ms: null, baseline, baselineMsgsPerSec, ratio: msgsPerSec / baselineMsgsPerSec, settings };
}

const suite: BenchSuite = {
  names: ['recoverability.error-move', 'recoverability.retry-all'],
  async run({ only, log }) {
    const results: BenchResult[] = [];
    const success = tempDb();
    const failing = tempDb();
    try {
      const handled = await drain(success.file, false);
      const failed = await drain(failing.file, true);
      log(`handled ${handled.toFixed(0)} msgs/s; moved to the error queue ${failed.toFixed(0)} msgs/s`);
      if (only('recoverability.error-move')) results.push(row('recoverability.error-move', failed, 'same endpoint, handler succeeds', handled));
      if (only('recoverability.retry-all')) {
        const { retried, moved } = await retryAll(failing.file);
        log(`retryAll ${retried.toFixed(0)} msgs/s; moveAll ${moved.toFixed(0)} msgs/s`);
        results.push(row('recoverability.retry-all', retried, 'QueueAdmin.moveAll (one UPDATE)', moved));
      }
    } finally {
      success.done();
      failing.done();
    }
    return results;
  },
};

export default suite;
