/**
 * The cross-process doorbell of the SQLite transport (each instance here stands for a process:
 * it has its own file handles and watches). A send to one queue wakes that queue's receivers
 * only.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { bucketOf, QueueSignals } from '../../src/sqlite/queue-signals.js';
import { waitFor } from '../../src/testing/wait.js';

let dir: string;
let db: string;
const closing: Array<{ close(): void }> = [];

beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'sy-signals-'));
  db = path.join(dir, 's.db');
});

afterEach(() => {
  for (const c of closing.splice(0)) c.close();
  rmSync(dir, { recursive: true, force: true });
});

function track<T extends { close(): void }>(c: T): T {
  closing.push(c);
  return c;
}

describe('SQLite queue signals', () => {
  it('wakes the receivers of the queue that got messages, and not those of another queue', async () => {
    const [a, b] = ['Sales', 'Billing'];
    expect(bucketOf(a)).not.toBe(bucketOf(b));
    const sender = track(new QueueSignals(db));
    const receiver = track(new QueueSignals(db));
    const woken: string[] = [];
    receiver.subscribe(a, () => woken.push(a));
    receiver.subscribe(b, () => woken.push(b));

    sender.notify([a]);
    await waitFor(() => woken.includes(a), { what: `a wake-up for ${a}` });
    expect(woken).toEqual([a]);
    sender.notify([b]);
    await waitFor(() => woken.includes(b), { what: `a wake-up for ${b}` });
    expect(woken).toEqual([a, b]);
  });

  it('wakes local waiters at once and stops calling a waiter that unsubscribed', async () => {
    const signals = track(new QueueSignals(db));
    let first = 0;
    let second = 0;
    const unsubscribe = signals.subscribe('Sales', () => first++);
    signals.notify(['Sales']);
    expect(first).toBe(1);
    unsubscribe();
    signals.subscribe('Sales', () => second++);
    signals.notify(['Sales']);
    expect(second).toBeGreaterThanOrEqual(1);
    await waitFor(() => second >= 2, { what: 'the touch from the second notify' });
    expect(first).toBe(1);
  });

  it('hashes a queue name to the same bucket every time (processes must agree)', () => {
    expect(bucketOf('Sales')).toBe(bucketOf('Sales'));
    expect(bucketOf('Sales')).toBeGreaterThanOrEqual(0);
    expect(bucketOf('Sales')).toBeLessThan(64);
  });
});
