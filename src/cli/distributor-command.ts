/**
 * `switchyard distributor --endpoint Sales --sqlite <path>` runs a distributor in front of a
 * logical endpoint; `switchyard distributor status ...` shows its workers, sessions, free slots
 * and queue depths (read from the store and the transport, so it works while it runs or not).
 */
import type { Command } from 'commander';
import { checkName, sharedAddress } from '../core/identity.js';
import { consoleLogger } from '../core/logger.js';
import { controlAddress } from '../scaleout/distributor-protocol.js';
import { startDistributor } from '../scaleout/distributor.js';
import { DISTRIBUTOR_SYNCHRONOUS, sqliteDistributorStore } from '../sqlite/distributor-store.js';
import { sqliteTransport } from '../sqlite/transport.js';
import { onShutdown } from './signals.js';

interface RunOptions {
  endpoint: string;
  sqlite: string;
  workerTimeout: string;
  errorQueue: string;
}

interface StatusOptions {
  endpoint: string;
  sqlite: string;
  json?: boolean;
}

function whole(option: string, value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`--${option} must be a positive whole number of milliseconds, not ${JSON.stringify(value)}.`);
  return n;
}

export function registerDistributorCommand(program: Command): void {
  const distributor = program.command('distributor').description('Run or inspect the distributor in front of a logical endpoint (see docs/distributor.md).');

  distributor
    .command('run', { isDefault: true })
    .description('Run the distributor: owns the endpoint address and forwards each message to the next ready worker.')
    .requiredOption('--endpoint <name>', 'the logical endpoint (its address is the data queue)')
    .requiredOption('--sqlite <path>', 'the SQLite database every process of the system uses')
    .option('--worker-timeout <ms>', 'declare a worker dead after this long without a heartbeat', '30000')
    .option('--error-queue <name>', 'where invalid control messages go', 'error')
    .action(async (options: RunOptions) => {
      const transport = sqliteTransport({ path: options.sqlite, synchronous: DISTRIBUTOR_SYNCHRONOUS });
      const store = sqliteDistributorStore({ path: options.sqlite, synchronous: DISTRIBUTOR_SYNCHRONOUS });
      const handle = await startDistributor({
        endpoint: options.endpoint,
        transport,
        store,
        workerTimeoutMs: whole('worker-timeout', options.workerTimeout),
        errorQueue: options.errorQueue,
        logger: consoleLogger(`${options.endpoint} distributor`),
      });
      onShutdown(async () => {
        await handle.stop();
        await store.close();
        await transport.close();
      });
    });

  distributor
    .command('status')
    .description('Show workers, sessions, free slots and queue depths.')
    .requiredOption('--endpoint <name>', 'the logical endpoint')
    .requiredOption('--sqlite <path>', 'the SQLite database')
    .option('--json', 'print one JSON object')
    .action(async (options: StatusOptions) => {
      const endpoint = checkName('--endpoint', options.endpoint);
      const transport = sqliteTransport({ path: options.sqlite });
      const store = sqliteDistributorStore({ path: options.sqlite });
      try {
        await transport.open();
        await store.open();
        const { workers, slots } = await store.load(endpoint);
        const depth = async (address: string) => ((await transport.queueExists(address)) ? transport.admin!.depth(address) : 0);
        const now = Date.now();
        const rows = await Promise.all(
          workers.map(async (w) => {
            const own = slots.filter((s) => s.worker === w.address && s.session === w.session);
            const free = own.filter((s) => s.messageId === null).length;
            return { worker: w.address, session: w.session, status: w.status, capacity: w.capacity, free, busy: own.length - free, lastSeenMsAgo: now - w.lastSeen, queued: await depth(w.address) };
          }),
        );
        const status = {
          endpoint,
          dataQueue: { address: sharedAddress(endpoint), depth: await depth(sharedAddress(endpoint)) },
          controlQueue: { address: controlAddress(endpoint), depth: await depth(controlAddress(endpoint)) },
          freeSlots: rows.filter((r) => r.status === 'live').reduce((sum, r) => sum + r.free, 0),
          workers: rows,
        };
        if (options.json) {
          console.log(JSON.stringify(status));
          return;
        }
        console.log(`distributor for ${endpoint}: data queue ${status.dataQueue.address} (${status.dataQueue.depth} waiting), control queue ${status.controlQueue.address} (${status.controlQueue.depth} waiting), ${status.freeSlots} free slot(s)`);
        if (rows.length === 0) console.log('  no workers have announced themselves');
        for (const r of rows) {
          console.log(`  ${r.worker.padEnd(24)} ${r.status.padEnd(9)} session ${r.session}  free ${r.free}/${r.capacity}  busy ${r.busy}  queued ${r.queued}  last seen ${(r.lastSeenMsAgo / 1000).toFixed(1)} s ago`);
        }
      } finally {
        await store.close();
        await transport.close();
      }
    });
}
