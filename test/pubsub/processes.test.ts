/**
 * The scale-out guarantee over real processes on the embedded SQLite transport: M publisher
 * instances x N subscriber instances, each a separate process. After P published events every
 * logical subscriber handled each event exactly once, and its instances shared the load.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { spawnRole } from '../../src/cli/demos/processes.js';
import { runPubSubScenario } from '../../src/cli/demos/pubsub-scenario.js';

const dirs: string[] = [];
afterAll(() => dirs.forEach((dir) => rmSync(dir, { recursive: true, force: true })));

const EVENTS = 60;

describe.each(['shared', 'mapped'] as const)('publish/subscribe across processes (%s queues)', (mode) => {
  it(`delivers each of ${EVENTS} events from 2 publishers exactly once to each logical subscriber, spread over its instances`, async () => {
    const dir = mkdtempSync(path.join(tmpdir(), `sy-pubsub-${mode}-`));
    dirs.push(dir);
    const { summary, errorQueueDepth } = await runPubSubScenario({
      db: path.join(dir, 'bus.db'),
      mode,
      mappingFile: path.join(dir, 'instances.json'),
      publishers: ['p1', 'p2'],
      subscribers: { Billing: ['b1', 'b2'], Shipping: ['s1', 's2', 's3'] },
      events: EVENTS,
      workMs: 20,
      timeoutMs: 40_000,
      spawn: (role, config, name) => spawnRole('pubsub', role, [JSON.stringify(config)], name),
    });
    expect(summary.published).toBe(EVENTS);
    expect(errorQueueDepth).toBe(0);
    for (const [endpoint, instances] of [['Billing', ['b1', 'b2']], ['Shipping', ['s1', 's2', 's3']]] as const) {
      const s = summary.subscribers[endpoint]!;
      expect({ endpoint, handled: s.handled, duplicates: s.duplicates, missing: s.missing }).toEqual({ endpoint, handled: EVENTS, duplicates: 0, missing: 0 });
      // Every copy was handled by exactly one instance: the per-instance counts add up to P.
      expect(Object.values(s.perInstance).reduce((a, b) => a + b, 0)).toBe(EVENTS);
      for (const d of instances) expect(s.perInstance[`${endpoint}@${d}`] ?? 0, `${endpoint}@${d} handled some`).toBeGreaterThan(0);
      if (mode === 'mapped') {
        // Two publishers each rotate over the instances: the spread is even within one per publisher.
        const counts = Object.values(s.perInstance);
        expect(Math.max(...counts) - Math.min(...counts)).toBeLessThanOrEqual(2);
      }
    }
  }, 90_000);
});
