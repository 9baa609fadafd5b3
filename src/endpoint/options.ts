/** What `createEndpoint` takes, and the checks that refuse wrong options before anything opens. */
import type { Handler } from '../core/context.js';
import { DEFAULT_LIMITS, type MessageLimits } from '../core/envelope.js';
import { ErrorCodes, SwitchyardError } from '../core/errors.js';
import type { EndpointFeature } from '../core/feature.js';
import { checkName } from '../core/identity.js';
import type { Logger } from '../core/logger.js';
import type { MessageDefinition } from '../core/messages.js';
import type { Clock } from '../core/clock.js';
import type { Behaviour } from '../core/pipeline.js';
import type { Outbox } from '../outbox/outbox.js';
import type { Routes } from '../core/routing.js';
import type { Transport } from '../core/transport.js';
import type { RecoverabilityOptions } from '../recoverability/policy.js';

export interface EndpointOptions {
  /** The logical endpoint name, e.g. `Sales`: shared by all its instances. */
  name: string;
  transport: Transport;
  handlers?: readonly Handler[];
  /** Message definitions this endpoint sends or publishes without handling them (optional: they register on first use). */
  messages?: readonly MessageDefinition[];
  /** Which logical endpoint owns each command type: `{ 'Sales.PlaceOrder': 'Sales', 'Billing.*': 'Billing' }`. */
  routes?: Routes;
  /** Most messages handled at once by this instance (default 8). */
  concurrency?: number;
  /**
   * Messages received ahead of free handler slots and held by this instance (default 0), so a
   * finished handler starts the next message without waiting for a receive. Held messages are
   * leased to this instance: on a shared queue, other instances cannot take them meanwhile.
   */
  prefetch?: number;
  instance?: { discriminator?: string; host?: string };
  /**
   * Which queues this instance receives from. `shared` (default true): the logical endpoint's
   * queue, with competing consumers. `instance`: this instance's own queue (sender-side
   * distribution, distributor workers).
   */
  queues?: { shared?: boolean; instance?: boolean };
  /** Sends only: opens no queue and receives nothing. */
  sendOnly?: boolean;
  recoverability?: RecoverabilityOptions;
  limits?: Partial<MessageLimits>;
  features?: readonly EndpointFeature[];
  /**
   * The transactional outbox on your own database (`postgresOutbox({ pool })` from
   * switchyard/postgres, `sqliteOutbox({ path })` from switchyard/sqlite): a handler's writes and
   * the messages it sends commit together, and a redelivered message is not handled twice.
   * See docs/outbox.md.
   */
  outbox?: Outbox;
  /** Your own pipeline steps, each before or after a built-in step (see docs/pipeline.md). */
  behaviours?: readonly Behaviour[];
  logger?: Logger;
  /** Where the endpoint reads time: deferred sends, delayed retries, time stamps (default: the system clock; the test kit passes a virtual one). */
  clock?: Clock;
  /**
   * How long `stop({ signal })` waits, after the signal aborts, for handlers that ignore their
   * own abort signal (default 10 000 ms); then it returns and their messages come back by lease.
   */
  stopGraceMs?: number;
}

export function configError(setting: string, problem: string, fix: string): SwitchyardError {
  return new SwitchyardError(ErrorCodes.CONFIG, `Endpoint option \`${setting}\` ${problem}.`, { fix });
}

/** Fails with SY_ERR_CONFIG naming the option and its fix; runs before anything is opened. */
export function validateOptions(options: EndpointOptions): void {
  if (!options || typeof options !== 'object') throw configError('options', 'is missing', 'Call createEndpoint({ name, transport, handlers }).');
  checkName('Endpoint name (option `name`)', options.name);
  const t = options.transport as Partial<Transport> | undefined;
  if (!t || typeof t.receive !== 'function' || typeof t.dispatch !== 'function') {
    throw configError('transport', 'is missing or is not a transport', "Pass one, e.g. transport: sqliteTransport({ path: './switchyard.db' }) from 'switchyard/sqlite'.");
  }
  const c = options.concurrency;
  if (c !== undefined && (!Number.isInteger(c) || c < 1 || c > 10_000)) {
    throw configError('concurrency', `is ${String(c)}`, 'Use a whole number from 1 to 10000 (default 8).');
  }
  const g = options.stopGraceMs;
  if (g !== undefined && (!Number.isInteger(g) || g < 0)) {
    throw configError('stopGraceMs', `is ${String(g)}`, 'Use a whole number of milliseconds, 0 or more (default 10000).');
  }
  const p = options.prefetch;
  if (p !== undefined && (!Number.isInteger(p) || p < 0 || p > 10_000)) {
    throw configError('prefetch', `is ${String(p)}`, 'Use a whole number from 0 to 10000 (default 0).');
  }
  if (options.sendOnly && (options.handlers?.length ?? 0) > 0) {
    throw configError('sendOnly', 'is set but handlers are given', 'A send-only endpoint receives nothing: remove the handlers or sendOnly.');
  }
  if (!options.sendOnly && options.queues && options.queues.shared === false && !options.queues.instance) {
    throw configError('queues', 'turns off both the shared and the instance queue', 'Receive from at least one queue, or set sendOnly: true.');
  }
  for (const [key, value] of Object.entries(options.limits ?? {})) {
    if (!(key in DEFAULT_LIMITS) || !Number.isInteger(value) || (value as number) < 1) {
      throw configError(`limits.${key}`, `is ${String(value)}`, `Use positive whole numbers for ${Object.keys(DEFAULT_LIMITS).join(', ')}.`);
    }
  }
}

