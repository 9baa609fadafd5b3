/**
 * The test bus (`switchyard/testing`): several endpoints on one in-memory broker (or one real
 * SQLite file), the real pipeline (routing, headers, retries, error queue), a virtual clock, and
 * a record of what was sent, published, handled, retried and failed. See docs/testing.md.
 *
 *   const bus = testBus([{ name: 'Sales', handlers: [...] }, { name: 'Billing', handlers: [...] }]);
 *   await bus.start();
 *   const session = await bus.track(() => bus.send(PlaceOrder, { orderId: 'o-1', amount: 3 }));
 *   expect(session.handled(ChargeCard).map((m) => m.endpoint)).toEqual(['Billing']);
 *   await bus.advance('1h');   // delivers what falls due in the next virtual hour, in due order
 *   await bus.stop();          // throws if a message reached an error queue, unless allowErrors
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { SendOptions } from '../core/context.js';
import { ErrorCodes, SwitchyardError } from '../core/errors.js';
import { silentLogger } from '../core/logger.js';
import type { CommandDefinition, PlainMessageDefinition } from '../core/messages.js';
import type { QueueAdmin, Transport, TransportMessage } from '../core/transport.js';
import { createEndpoint, type Endpoint, type EndpointOptions } from '../endpoint/endpoint.js';
import { MemoryBroker, memoryTransport } from '../memory/transport.js';
import { Recorder, type RecordedMessage } from './recorder.js';
import { TrackedSession, type IdleReport } from './session.js';
import { settleBus, type BusView } from './settling.js';
import { parseDuration, VirtualClock } from './virtual-clock.js';

export interface TestBusOptions {
  /** The test expects messages in an error queue: `stop()` does not fail for them. */
  allowErrors?: boolean;
  /** `memory` (default) or `sqlite`: a real SQLite file, on the same virtual clock. */
  transport?: 'memory' | 'sqlite';
  /** The SQLite file (default: a new file in a temporary folder, removed by `stop()`). */
  sqlitePath?: string;
  /** Where the virtual clock starts, epoch ms or a Date (default: the real time now). */
  startAt?: number | Date;
  /** Wall-clock ms `runUntilIdle`, `advance` and `track` wait for the bus to settle (default 5000). */
  idleTimeoutMs?: number;
}

export type TestEndpointOptions = Omit<EndpointOptions, 'transport' | 'clock'>;

export interface TestBus {
  /** The virtual clock every endpoint reads; pass it to `dataset({ clock })` or `startDistributor({ clock })`. */
  readonly clock: VirtualClock;
  start(): Promise<void>;
  stop(): Promise<void>;
  endpoint(name: string): Endpoint;
  /** Sends a command from the bus to the endpoint that handles it (or the one its routes name). */
  send<B>(definition: CommandDefinition<B> | PlainMessageDefinition<B>, body: B, options?: SendOptions): Promise<void>;
  /** Every message sent or published by any endpoint, in order; filtered by type name when given. */
  dispatched(typeName?: string): RecordedMessage[];
  /** Messages waiting in error queues. */
  failed(): Promise<TransportMessage[]>;
  /** Settles what is due now (handlers and their cascade) and reports what is scheduled later. */
  runUntilIdle(): Promise<IdleReport>;
  /** Moves virtual time forward, delivering what falls due on the way in due order, each cascade settled. */
  advance(duration: number | string): Promise<IdleReport>;
  /** Runs `action`, settles what it caused, and returns every message of the cascade. */
  track(action: () => unknown): Promise<TrackedSession>;
}

const CLIENT = 'TestBus';

/** Commands are routed to the endpoint that handles them, unless the endpoints' routes say otherwise. */
function clientRoutes(endpoints: readonly TestEndpointOptions[]): Record<string, string> {
  const routes: Record<string, string> = {};
  for (const e of endpoints) {
    for (const h of e.handlers ?? []) if (h.definition.kind !== 'event') routes[h.definition.typeName] = e.name;
  }
  for (const e of endpoints) Object.assign(routes, e.routes);
  return routes;
}

interface TransportFactory {
  make(): Promise<Transport>;
  /** Wakes the receivers of these queues after the clock moved. */
  wake(queues: readonly string[]): void;
  cleanup(): void;
}

function transports(options: TestBusOptions, clock: VirtualClock): TransportFactory {
  if ((options.transport ?? 'memory') === 'memory') {
    const broker = new MemoryBroker(clock);
    return { make: async () => memoryTransport({ broker }), wake: (queues) => queues.forEach((q) => broker.wake(q)), cleanup: () => undefined };
  }
  const folder = options.sqlitePath === undefined ? mkdtempSync(path.join(tmpdir(), 'switchyard-testbus-')) : undefined;
  const file = options.sqlitePath ?? path.join(folder!, 'bus.db');
  let signals: { notify(queues: Iterable<string>): void; close(): void } | undefined;
  return {
    // Loaded on first use: a memory test bus never loads the native SQLite module.
    make: async () => {
      const [{ sqliteTransport }, { QueueSignals }] = await Promise.all([import('../sqlite/transport.js'), import('../sqlite/queue-signals.js')]);
      signals ??= new QueueSignals(file);
      return sqliteTransport({ path: file, clock, pollMs: 50 });
    },
    // After the clock moved: the doorbell every receiver of the file watches (the same one a
    // commit rings), so a receiver sleeping until a due time on the old clock looks again now.
    wake: (queues) => signals?.notify(queues),
    cleanup: () => {
      signals?.close();
      if (folder !== undefined) rmSync(folder, { recursive: true, force: true });
    },
  };
}

function failedMessagesError(errors: readonly TransportMessage[]): SwitchyardError {
  const first = errors[0]!.headers;
  return new SwitchyardError(
    ErrorCodes.TEST_BUS_FAILED_MESSAGES,
    `${errors.length} message(s) reached an error queue; the first: ${first['sy1-failure-exception-type']}: ${first['sy1-failure-exception-message']}.`,
    { fix: 'Fix the handler, or pass { allowErrors: true } to testBus() when a test expects failures.' },
  );
}

async function errorQueueMessages(transport: Transport, errorQueues: ReadonlySet<string>): Promise<TransportMessage[]> {
  const out: TransportMessage[] = [];
  for (const q of errorQueues) if (await transport.queueExists(q)) out.push(...(await transport.admin!.peek(q, { offset: 0, limit: 10_000 })));
  return out;
}

export function testBus(endpoints: readonly TestEndpointOptions[], options: TestBusOptions = {}): TestBus {
  if (endpoints.some((e) => e.name === CLIENT)) {
    throw new SwitchyardError(ErrorCodes.CONFIG, `The test bus has its own send-only endpoint named ${CLIENT}; an endpoint of the test has that name too.`, { fix: 'Rename that endpoint.' });
  }
  const start = options.startAt instanceof Date ? options.startAt.getTime() : options.startAt;
  const clock = new VirtualClock(start);
  const errorQueues = new Set(endpoints.map((e) => e.recoverability?.errorQueue ?? 'error'));
  const recorder = new Recorder(clock, errorQueues);
  const { make, wake, cleanup } = transports(options, clock);
  const byName = new Map<string, Endpoint>();
  let admin: { transport: Transport; queues: QueueAdmin } | undefined;
  const timeoutMs = options.idleTimeoutMs ?? 5000;

  const view = (): BusView => ({ admin: admin!.queues, clock, recorder, wake, timeoutMs });
  const failed = () => errorQueueMessages(admin!.transport, errorQueues);
  const requireStarted = () => {
    if (!admin) throw new SwitchyardError(ErrorCodes.NOT_RUNNING, 'The test bus is not started.', { fix: 'await bus.start() first.' });
  };

  const bus: TestBus = {
    clock,
    async start() {
      const adminTransport = await make();
      await adminTransport.open();
      admin = { transport: adminTransport, queues: adminTransport.admin! };
      const all = [...endpoints, { name: CLIENT, sendOnly: true, routes: clientRoutes(endpoints) }];
      for (const e of all) {
        const endpoint = createEndpoint({ logger: silentLogger, ...e, clock, transport: recorder.wrap(e.name, await make()) });
        byName.set(e.name, endpoint);
        await endpoint.start();
      }
    },
    async stop() {
      for (const e of [...byName.values()].reverse()) await e.stop();
      const errors = admin ? await failed() : [];
      await admin?.transport.close();
      cleanup();
      if (errors.length > 0 && !options.allowErrors) throw failedMessagesError(errors);
    },
    endpoint(name) {
      const e = byName.get(name);
      if (!e) {
        throw new SwitchyardError(ErrorCodes.CONFIG, `No endpoint named ${name} in this test bus; it has ${[...byName.keys()].join(', ') || 'none (not started)'}.`, {
          fix: 'Use a name from the endpoints passed to testBus(), after await bus.start().',
        });
      }
      return e;
    },
    send(definition, body, sendOptions) {
      return bus.endpoint(CLIENT).send(definition, body, sendOptions);
    },
    dispatched(typeName) {
      return recorder.events.filter((m) => (m.kind === 'sent' || m.kind === 'published') && (typeName === undefined || m.type === typeName));
    },
    failed() {
      requireStarted();
      return failed();
    },
    runUntilIdle() {
      requireStarted();
      return settleBus(view());
    },
    async advance(duration) {
      const ms = parseDuration(duration);
      requireStarted();
      return settleBus(view(), clock.now() + ms);
    },
    async track(action) {
      requireStarted();
      await settleBus(view());
      const from = recorder.events.length;
      await action();
      const report = await settleBus(view());
      return new TrackedSession(recorder.events.slice(from), report);
    },
  };
  return bus;
}
