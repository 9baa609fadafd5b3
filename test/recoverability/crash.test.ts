/**
 * Crash safety of the retry pipeline on SQLite: an endpoint process is SIGKILLed at random
 * moments while it fails messages into delayed retries and into the error queue. After every
 * kill, and at the end, each message sent is in exactly one place: waiting in its queue (as
 * itself or as its delayed-retry copy), handled (its record in Done, sent atomically with the
 * completion), or in the error queue. Never two, never none.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, describe, expect, it } from 'vitest';
import { buildMessage, DEFAULT_LIMITS } from '../../src/core/envelope.js';
import { makeIdentity } from '../../src/core/identity.js';
import type { Transport } from '../../src/core/transport.js';
import { defineCommand } from '../../src/index.js';
import { sqliteTransport } from '../../src/sqlite/index.js';
import { waitFor } from '../../src/testing/wait.js';
import { repoRoot, tempDb } from './fixtures/bus.js';

const Work = defineCommand<{ n: number; poison: boolean }>('Crash.Work');
const ITERATIONS = 20;
const PER_ITERATION = 40;

const db = tempDb();
let transport: Transport;
const children = new Set<ChildProcess>();

afterAll(async () => {
  for (const child of children) child.kill('SIGKILL');
  await transport?.close();
  db.cleanup();
});

function startEndpoint(): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(repoRoot, 'test/recoverability/fixtures/crash-endpoint.ts')], {
    cwd: repoRoot,
    env: { ...process.env, SWITCHYARD_SQLITE_PATH: db.file },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.add(child);
  child.once('exit', () => children.delete(child));
  return new Promise((resolve, reject) => {
    createInterface({ input: child.stdout! }).on('line', (line) => line === 'started' && resolve(child));
    child.once('exit', (code) => reject(new Error(`crash endpoint exited (${code}) before starting`)));
  });
}

function kill(child: ChildProcess): Promise<void> {
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGKILL');
  return exited;
}

interface Census {
  waiting: number[];
  handled: number[];
  failed: number[];
}

/** Where each message is, and how many steps of the pipeline have been taken in all. */
async function census(): Promise<{ census: Census; steps: number }> {
  const read = (queue: string) => transport.admin!.peek(queue, { offset: 0, limit: 100_000 });
  const numbers = (messages: { body: string }[]) => messages.map((m) => (JSON.parse(m.body) as { n: number }).n);
  const [waiting, handled, failed] = await Promise.all([read('Sales'), read('Done'), read('error')]);
  const delayed = waiting.filter((m) => m.headers['sy1-retries-delayed'] !== undefined).length;
  return {
    census: { waiting: numbers(waiting), handled: numbers(handled), failed: numbers(failed) },
    steps: delayed + 2 * (handled.length + failed.length),
  };
}

/** Every message sent is in exactly one place. */
function expectEachOnce(c: Census, sent: number, when: string): void {
  const places = new Map<number, string[]>();
  for (const [place, list] of Object.entries(c)) for (const n of list as number[]) places.set(n, [...(places.get(n) ?? []), place]);
  const wrong = Array.from({ length: sent }, (_, n) => [n, places.get(n) ?? []] as const).filter(([, p]) => p.length !== 1);
  expect(wrong.map(([n, p]) => `message ${n}: ${p.length === 0 ? 'nowhere' : p.join(' + ')}`), when).toEqual([]);
  expect(places.size, `${when}: no unknown messages`).toBe(sent);
}

describe('SIGKILL during retries and moves to the error queue (SQLite, real processes)', () => {
  it('accounts for every message exactly once after each kill and at the end', async () => {
    transport = sqliteTransport({ path: db.file });
    await transport.open();
    for (const q of ['Sales', 'Done', 'error']) await transport.createQueue(q);
    const sender = makeIdentity('Client', 'host', 1, 'c1');
    let sent = 0;
    let killedMidWork = 0;

    for (let i = 0; i < ITERATIONS; i++) {
      const batch = Array.from({ length: PER_ITERATION }, () => {
        const n = sent++;
        const message = buildMessage(Work, { n, poison: n % 2 === 0 }, { intent: 'send', identity: sender, replyTo: undefined, causedBy: undefined }, DEFAULT_LIMITS);
        return { destination: 'Sales', message };
      });
      await transport.dispatch(batch);
      const before = await census();
      const child = await startEndpoint();
      await new Promise((resolve) => setTimeout(resolve, Math.random() * 120)); // a random moment to crash at
      await kill(child);
      const after = await census();
      expectEachOnce(after.census, sent, `after kill ${i + 1}`);
      if (after.steps > before.steps && after.steps < 2 * sent) killedMidWork += 1;
    }
    // The kills must have interrupted real work, or this test proves nothing.
    expect(killedMidWork).toBeGreaterThanOrEqual(ITERATIONS / 4);

    const survivor = await startEndpoint();
    const done = await waitFor(async () => {
      const { census: c } = await census();
      return c.waiting.length === 0 && c;
    }, { timeoutMs: 30_000, what: 'every message to be handled or failed' });
    await kill(survivor);
    expectEachOnce(done, sent, 'at the end');
    expect(done.failed.every((n) => n % 2 === 0), 'only poison messages failed').toBe(true);
    expect(done.handled.every((n) => n % 2 === 1), 'only good messages were handled').toBe(true);
  });
});
