/**
 * `switchyard distributor --endpoint Sales --sqlite <path>` runs a distributor in front of a
 * logical endpoint; `switchyard distributor status ...` shows its workers, sessions, free slots
 * and queue depths (read from the store and the transport, so it works while it runs or not).
 * Both take the store flags and environment variables of ./connect.ts, like `switchyard errors`.
 */
import type { Command } from 'commander';
import { ErrorCodes, SwitchyardError } from '../core/errors.js';
import { checkName, sharedAddress } from '../core/identity.js';
import { consoleLogger } from '../core/logger.js';
import type { Transport } from '../core/transport.js';
import { controlAddress } from '../scaleout/distributor-protocol.js';
import { memoryDistributorStore, type DistributorStore } from '../scaleout/distributor-store.js';
import { startDistributor } from '../scaleout/distributor.js';
import { addStoreOptions, connect } from './connect.js';
import { onShutdown } from './signals.js';

interface RunOptions {
  endpoint: string;
  workerTimeout: string;
  errorQueue: string;
  [store: string]: unknown;
}

interface StatusOptions {
  endpoint: string;
  json?: boolean;
  [store: string]: unknown;
}

function whole(option: string, value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) {
    throw new SwitchyardError(ErrorCodes.CONFIG, `--${option} must be a positive whole number of milliseconds, not ${JSON.stringify(value)}.`, { fix: `Pass e.g. --${option} 30000.` });
  }
  return n;
}

async function readStatus(endpoint: string, transport: Transport, store: DistributorStore | undefined) {
  const { workers, slots } = store ? await store.load(endpoint) : { workers: [], slots: [] };
  const depth = async (address: string) => ((await transport.queueExists(address)) ? (transport.admin?.depth(address) ?? 0) : 0);
  const now = Date.now();
  const rows = await Promise.all(
    workers.map(async (w) => {
      const own = slots.filter((s) => s.worker === w.address && s.session === w.session);
      const free = own.filter((s) => s.messageId === null).length;
      return { worker: w.address, session: w.session, status: w.status, capacity: w.capacity, free, busy: own.length - free, lastSeenMsAgo: now - w.lastSeen, queued: await depth(w.address) };
    }),
  );
  return {
    endpoint,
    dataQueue: { address: sharedAddress(endpoint), depth: await depth(sharedAddress(endpoint)) },
    controlQueue: { address: controlAddress(endpoint), depth: await depth(controlAddress(endpoint)) },
    freeSlots: rows.filter((r) => r.status === 'live').reduce((sum, r) => sum + r.free, 0),
    /** False where the distributor keeps its workers in its own process: only queue depths can be read. */
    workersRecorded: store !== undefined,
    workers: rows,
  };
}

function printStatus(status: Awaited<ReturnType<typeof readStatus>>): void {
  const { endpoint, dataQueue, controlQueue } = status;
  console.log(`distributor for ${endpoint}: data queue ${dataQueue.address} (${dataQueue.depth} waiting), control queue ${controlQueue.address} (${controlQueue.depth} waiting), ${status.freeSlots} free slot(s)`);
  if (!status.workersRecorded) console.log('  workers: not recorded on this store (the distributor keeps them in its own process)');
  else if (status.workers.length === 0) console.log('  no workers have announced themselves');
  for (const r of status.workers) {
    console.log(`  ${r.worker.padEnd(24)} ${r.status.padEnd(9)} session ${r.session}  free ${r.free}/${r.capacity}  busy ${r.busy}  queued ${r.queued}  last seen ${(r.lastSeenMsAgo / 1000).toFixed(1)} s ago`);
  }
}

export function registerDistributorCommand(program: Command): void {
  const distributor = program.command('distributor').description('Run or inspect the distributor in front of a logical endpoint (see docs/distributor.md).');

  addStoreOptions(
    distributor
      .command('run', { isDefault: true })
      .description('Run the distributor: owns the endpoint address and forwards each message to the next ready worker.')
      .requiredOption('--endpoint <name>', 'the logical endpoint (its address is the data queue)'),
  )
    .option('--worker-timeout <ms>', 'declare a worker dead after this long without a heartbeat', '30000')
    .option('--error-queue <name>', 'where invalid control messages go', 'error')
    .action(async (options: RunOptions) => {
      const endpoint = checkName('--endpoint', options.endpoint);
      const workerTimeoutMs = whole('worker-timeout', options.workerTimeout);
      const logger = consoleLogger(`${endpoint} distributor`);
      const connection = await connect(options, { create: true, role: 'distributor' });
      try {
        let store = await connection.openDistributorStore();
        if (!store) {
          logger.info('this store keeps no distributor state: workers and ready slots live in this process, and workers announce themselves again after a restart');
          store = memoryDistributorStore();
        }
        const handle = await startDistributor({ endpoint, transport: connection.transport, store, workerTimeoutMs, errorQueue: options.errorQueue, logger });
        onShutdown(async () => {
          await handle.stop();
          await connection.close();
        });
      } catch (error) {
        await connection.close();
        throw error;
      }
    });

  addStoreOptions(
    distributor
      .command('status')
      .description('Show workers, sessions, free slots and queue depths.')
      .requiredOption('--endpoint <name>', 'the logical endpoint'),
  )
    .option('--json', 'print one JSON object')
    .action(async (options: StatusOptions) => {
      const endpoint = checkName('--endpoint', options.endpoint);
      const connection = await connect(options);
      try {
        const status = await readStatus(endpoint, connection.transport, await connection.openDistributorStore());
        if (options.json) console.log(JSON.stringify(status));
        else printStatus(status);
      } finally {
        await connection.close();
      }
    });
}
