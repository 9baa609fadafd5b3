/**
 * Runs a publish/subscribe scenario over real processes and counts what each logical
 * subscriber handled: M publisher instances of Sales publish P events in total to logical
 * subscribers that run N instances each. Used by the demo and by test/pubsub/processes.test.ts.
 *
 * Done means: every logical subscriber handled every event, all publishers reported, and every
 * subscriber queue is empty (so no copy is still on its way: a duplicate would have shown).
 */
import { rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { sqliteTransport } from '../../sqlite/index.js';
import { instanceAddress, sharedAddress } from '../../core/identity.js';
import { waitFor } from '../../testing/wait.js';
import type { Report, RoleProcess } from './processes.js';
import { PUBLISHER, type PublisherConfig, type ScaleOutMode, type SubscriberConfig } from './pubsub-roles.js';

export interface PubSubScenario {
  db: string;
  mode: ScaleOutMode;
  /** Where the instance-mapping file is written (mapped mode). */
  mappingFile?: string;
  /** Publisher instance discriminators. */
  publishers: readonly string[];
  /** Logical subscriber endpoint -> its instance discriminators. */
  subscribers: Readonly<Record<string, readonly string[]>>;
  events: number;
  workMs?: number;
  timeoutMs?: number;
  spawn(role: 'publisher' | 'subscriber', config: PublisherConfig | SubscriberConfig, name: string): RoleProcess;
  onHandled?(endpoint: string, instance: string, id: number): void;
}

export interface SubscriberSummary {
  handled: number;
  duplicates: number;
  missing: number;
  perInstance: Record<string, number>;
}

/** The demo's `--json` line. */
export interface PubSubSummary {
  published: number;
  subscribers: Record<string, SubscriberSummary>;
}

export interface PubSubOutcome {
  summary: PubSubSummary;
  /** Messages left in the error queue (0 when all went well). */
  errorQueueDepth: number;
  elapsedMs: number;
}

export async function runPubSubScenario(scenario: PubSubScenario): Promise<PubSubOutcome> {
  const { db, mode, events } = scenario;
  const timeoutMs = scenario.timeoutMs ?? 60_000;
  const mapped = mode === 'mapped';
  if (mapped) {
    if (!scenario.mappingFile) throw new Error('mapped mode needs mappingFile');
    writeFileSync(scenario.mappingFile, JSON.stringify({ endpoints: { [PUBLISHER]: scenario.publishers, ...scenario.subscribers } }, null, 2));
  }
  const endpoints = Object.keys(scenario.subscribers);
  const instanceCount = endpoints.reduce((n, e) => n + scenario.subscribers[e]!.length, 0);
  const seen = new Map(endpoints.map((e) => [e, new Set<number>()]));
  const summary: PubSubSummary = {
    published: 0,
    subscribers: Object.fromEntries(endpoints.map((e) => [e, { handled: 0, duplicates: 0, missing: events, perInstance: {} }])),
  };
  const processes: RoleProcess[] = [];
  const transport = sqliteTransport({ path: db });
  try {
    const subscribers = endpoints.flatMap((endpoint) =>
      scenario.subscribers[endpoint]!.map((discriminator) => {
        const name = `${endpoint}@${discriminator}`;
        const config: SubscriberConfig = { db, mode, endpoint, discriminator, mappingFile: scenario.mappingFile, workMs: scenario.workMs ?? 0 };
        const role = scenario.spawn('subscriber', config, name);
        role.onReport((r) => {
          if (typeof r.handled !== 'number' || r.endpoint !== endpoint) return;
          const s = summary.subscribers[endpoint]!;
          const ids = seen.get(endpoint)!;
          if (ids.has(r.handled)) s.duplicates += 1;
          ids.add(r.handled);
          s.handled = ids.size;
          s.missing = events - ids.size;
          s.perInstance[name] = (s.perInstance[name] ?? 0) + 1;
          scenario.onHandled?.(endpoint, name, r.handled);
        });
        processes.push(role);
        return role;
      }),
    );
    const goFile = path.join(path.dirname(path.resolve(db)), 'publish.go');
    rmSync(goFile, { force: true });
    const share = Math.ceil(events / scenario.publishers.length);
    const publishers = scenario.publishers.map((discriminator, i) => {
      const first = i * share + 1;
      const config: PublisherConfig = {
        db,
        mode,
        discriminator,
        mappingFile: scenario.mappingFile,
        first,
        count: Math.max(0, Math.min(share, events - i * share)),
        // Shared mode: one subscription per logical endpoint; mapped mode: one per instance.
        expectSubscriptions: mapped ? instanceCount : endpoints.length,
        goFile,
      };
      const role = scenario.spawn('publisher', config, `${PUBLISHER}@${discriminator}`);
      processes.push(role);
      return role;
    });
    const started = Date.now();
    await within(timeoutMs, 'every role to report ready', [...subscribers, ...publishers], (r) => r.ready !== undefined);
    // Every instance runs before the first publish, so the load can spread over all of them.
    writeFileSync(goFile, '');
    const reported = await within(timeoutMs, 'every publisher to report what it published', publishers, (r) => typeof r.published === 'number');
    summary.published = reported.reduce((n, r) => n + (r.published as number), 0);
    await waitFor(() => endpoints.every((e) => seen.get(e)!.size === events), { timeoutMs, what: 'every logical subscriber to handle every event' });
    await transport.open();
    const queues = mapped ? endpoints.flatMap((e) => scenario.subscribers[e]!.map((d) => instanceAddress(e, d))) : endpoints.map(sharedAddress);
    await waitFor(async () => (await Promise.all(queues.map((q) => transport.admin!.depth(q)))).every((d) => d === 0), {
      timeoutMs,
      what: 'the subscriber queues to drain',
    });
    const elapsedMs = Date.now() - started;
    await Promise.all(processes.map((p) => p.stop()));
    const errorQueueDepth = (await transport.queueExists('error')) ? await transport.admin!.depth('error') : 0;
    return { summary, errorQueueDepth, elapsedMs };
  } finally {
    await Promise.all(processes.map((p) => p.stop()));
    await transport.close();
  }
}

/** Waits for a report from each role, failing after `timeoutMs` with the roles still missing. */
async function within(timeoutMs: number, what: string, roles: readonly RoleProcess[], predicate: (r: Report) => boolean): Promise<Report[]> {
  const pending = new Set(roles.map((r) => r.name));
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`Timed out after ${timeoutMs} ms waiting for ${what}; still waiting for ${[...pending].join(', ')}`)), timeoutMs);
  });
  try {
    return await Promise.race([Promise.all(roles.map((role) => role.waitFor(predicate).finally(() => pending.delete(role.name)))), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
