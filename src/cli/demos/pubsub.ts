/**
 * The publish/subscribe demo: Sales (2 publisher instances) publishes OrderPlaced events; two
 * logical subscribers take them: Billing (1 instance) and Shipping (3 instances, competing
 * consumers on the Shipping queue). Each logical subscriber must handle each event exactly once.
 * `switchyard demo pubsub mapped` runs the same with sender-side distribution (instance queues
 * listed in an instance-mapping file).
 */
import path from 'node:path';
import type { DemoOptions } from './scenario.js';
import { inDemoFolder, type DemoFolder } from './processes.js';
import { pubsubRoles } from './pubsub-roles.js';
import { runPubSubScenario } from './pubsub-scenario.js';

export const roles = pubsubRoles;

export async function run(options: DemoOptions): Promise<void> {
  await inDemoFolder((folder) => runIn(folder, options));
}

async function runIn(demo: DemoFolder, { json, args }: DemoOptions): Promise<void> {
  const mode = args[0] === 'mapped' ? 'mapped' : 'shared';
  const folder = demo.path;
  const db = path.join(folder, 'switchyard.db');
  const events = 30;
  const say = (line: string) => (json ? undefined : console.log(line));
  say(`Switchyard demo: Sales (2 instances) publishes ${events} OrderPlaced events to Billing (1 instance) and Shipping (3 instances).`);
  say(
    mode === 'shared'
      ? 'Scale-out: competing consumers on each logical endpoint\'s shared queue (run "demo pubsub mapped" for sender-side distribution).'
      : `Scale-out: sender-side distribution; instance mapping at ${path.join(folder, 'instances.json')}.`,
  );
  say(`Embedded SQLite transport and subscription store at ${db}\n`);
  const outcome = await runPubSubScenario({
    db,
    mode,
    mappingFile: path.join(folder, 'instances.json'),
    publishers: ['p1', 'p2'],
    subscribers: { Billing: ['b1'], Shipping: ['s1', 's2', 's3'] },
    events,
    workMs: 10,
    spawn: (role, config, name) => demo.spawn('pubsub', role, [JSON.stringify(config)], name),
    onHandled: (endpoint, instance, id) => say(`  event ${String(id).padStart(2)} handled by ${endpoint.padEnd(8)} (${instance})`),
  });
  const { summary } = outcome;
  say(`\n${summary.published} events published; ${outcome.elapsedMs} ms`);
  for (const [endpoint, s] of Object.entries(summary.subscribers)) {
    const spread = Object.entries(s.perInstance).map(([i, n]) => `${i}: ${n}`).join(', ');
    say(`  ${endpoint}: handled ${s.handled}, duplicates ${s.duplicates}, missing ${s.missing} (${spread})`);
  }
  if (outcome.errorQueueDepth > 0) say(`  ${outcome.errorQueueDepth} message(s) in the error queue`);
  if (json) console.log(JSON.stringify(summary));
  const ok = Object.values(summary.subscribers).every((s) => s.duplicates === 0 && s.missing === 0);
  if (!ok || summary.published !== events || outcome.errorQueueDepth > 0) process.exitCode = 1;
}
