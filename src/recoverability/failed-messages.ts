/**
 * Operating the error queue: list, show, retry, delete and archive failed messages, over any
 * transport with a QueueAdmin (the CLI `switchyard errors` is a thin layer over this).
 *
 * Retry returns a message to the queue it failed in (`sy1-failure-queue`) with its original
 * message id, failure headers removed and the manual retry recorded (`sy1-retried-at`,
 * `sy1-retry-count`). It is a QueueAdmin.take with a replacement: removing it from the error
 * queue and sending it back happen in one transaction (SQLite, memory), so a crash leaves it in
 * exactly one of the two queues, and retrying an id that is no longer there reports
 * `not-found` instead of sending a second copy. When the failed queue does not exist the take
 * sends nothing and removes nothing: the message stays in the error queue.
 *
 * Copies of one event delivered to several subscribers share a message id; if more than one of
 * them failed, the error queue holds them all under that id, and retry returns each to its own
 * failed queue.
 */
import { systemClock } from '../core/clock.js';
import { ErrorCodes, isSwitchyardError, SwitchyardError } from '../core/errors.js';
import { checkName, type Address } from '../core/identity.js';
import type { Outgoing, QueueAdmin, Transport, TransportMessage } from '../core/transport.js';
import {
  describeFailedMessage,
  matchesFilter,
  summaryOf,
  type FailedMessage,
  type FailedMessageFilter,
  type FailedMessageSummary,
} from './failed-message.js';
import { FailureHeaders, manualRetryHeaders } from './failure-headers.js';

export interface FailedMessagesOptions {
  /** The error queue to operate on (default `error`, the endpoint default). */
  errorQueue?: string;
  /** Where archive() moves messages (default `<errorQueue>.archive`). */
  archiveQueue?: string;
  /** Messages read per peek while scanning (default 500). */
  pageSize?: number;
  /** The time stamped on retries and archives (tests). */
  now?: () => Date;
}

export interface ListOptions extends FailedMessageFilter {
  /** Matching messages to skip (default 0). */
  offset?: number;
  /** Most matching messages to return (default 50). */
  limit?: number;
}

export interface FailedMessagePage {
  readonly messages: FailedMessageSummary[];
  /** Matching messages in the queue, over all pages. */
  readonly total: number;
  readonly offset: number;
  readonly limit: number;
}

/** What happened to one id. `failed` keeps the message in the error queue. */
export type FailedMessageOutcome =
  | { readonly id: string; readonly status: 'retried'; readonly queues: readonly string[] }
  | { readonly id: string; readonly status: 'deleted' | 'archived' | 'not-found' }
  | { readonly id: string; readonly status: 'failed'; readonly queue: string | undefined; readonly error: SwitchyardError };

export interface FailedMessages {
  readonly errorQueue: string;
  readonly archiveQueue: string;
  /** Matching messages, oldest first. Scans the whole queue (filters run here, not in the store). */
  list(options?: ListOptions): Promise<FailedMessagePage>;
  /** One failed message with its headers, body and exception; undefined when the id is not there. */
  show(id: string): Promise<FailedMessage | undefined>;
  /** Returns each id to its failed queue; ids not in the error queue report `not-found`. */
  retry(ids: readonly string[]): Promise<FailedMessageOutcome[]>;
  /** Retries every message matching `filter` (all of them when it is empty). */
  retryAll(filter?: FailedMessageFilter): Promise<FailedMessageOutcome[]>;
  delete(ids: readonly string[]): Promise<FailedMessageOutcome[]>;
  /** Moves messages to the archive queue, unchanged but for `sy1-archived-at`. */
  archive(ids: readonly string[]): Promise<FailedMessageOutcome[]>;
}

/** How one taken message is replaced: returned to its queue, archived, or nothing (deleted). */
interface Move {
  readonly status: 'retried' | 'deleted' | 'archived';
  /** The messages to send instead; records their destinations in `queues`. Throws a SwitchyardError to refuse. */
  replace(message: TransportMessage, queues: string[]): Outgoing[];
}

const MAX_LIMIT = 10_000;
/** Ids taken in one transaction. */
const TAKE_CHUNK = 500;

function adminOf(transport: Transport): QueueAdmin {
  if (!transport.admin) {
    throw new SwitchyardError(ErrorCodes.CONFIG, `The ${transport.name} transport cannot list or take messages from its queues, so the error queue cannot be operated through it.`, {
      fix: "Use the broker's own tools for this transport's error queue, or a transport with queue administration (SQLite, PostgreSQL, memory).",
    });
  }
  return transport.admin;
}

function checkPaging(name: string, value: number, max: number): number {
  if (!Number.isInteger(value) || value < 0 || value > max) {
    throw new SwitchyardError(ErrorCodes.CONFIG, `The ${name} ${String(value)} is not a whole number from 0 to ${max}.`, {
      fix: `Pass a ${name} from 0 to ${max}.`,
    });
  }
  return value;
}

/** One error queue on one transport: what every operation below works on. */
interface ErrorQueueScope {
  readonly transport: Transport;
  readonly errorQueue: Address;
  readonly pageSize: number;
}

async function requireErrorQueue({ transport, errorQueue }: ErrorQueueScope): Promise<QueueAdmin> {
  const admin = adminOf(transport);
  if (!(await transport.queueExists(errorQueue))) {
    const known = await admin.queues();
    throw new SwitchyardError(ErrorCodes.QUEUE_NOT_FOUND, `The error queue ${errorQueue} does not exist on the ${transport.name} transport (queues there: ${known.join(', ') || 'none'}).`, {
      fix: 'Check the store you pointed at and the error queue name (--error-queue); an endpoint creates its error queue when it starts.',
    });
  }
  return admin;
}

async function* scan({ errorQueue, pageSize }: ErrorQueueScope, admin: QueueAdmin): AsyncGenerator<FailedMessage> {
  for (let offset = 0; ; offset += pageSize) {
    const page = await admin.peek(errorQueue, { offset, limit: pageSize });
    for (const message of page) yield describeFailedMessage(message);
    if (page.length < pageSize) return;
  }
}

/**
 * Takes ids a chunk at a time: one QueueAdmin.take per chunk (one transaction, one scan of the
 * error queue). When a chunk fails because of one message (its failed queue is gone, a header
 * is missing), nothing of the chunk happened; it is taken again id by id, so only the ids at
 * fault fail.
 */
async function takeInChunks(scope: ErrorQueueScope, ids: readonly string[], move: Move): Promise<FailedMessageOutcome[]> {
  const admin = await requireErrorQueue(scope);
  const unique = [...new Set(ids)];
  const outcomes: FailedMessageOutcome[] = [];
  for (let i = 0; i < unique.length; i += TAKE_CHUNK) {
    const chunk = unique.slice(i, i + TAKE_CHUNK);
    const done = await takeChunk(scope, admin, chunk, move).catch(async (thrown: unknown) => {
      if (!isSwitchyardError(thrown)) throw thrown;
      return (await Promise.all(chunk.map((id) => takeChunk(scope, admin, [id], move)))).flat();
    });
    outcomes.push(...done);
  }
  return outcomes;
}

async function takeChunk(scope: ErrorQueueScope, admin: QueueAdmin, chunk: readonly string[], move: Move): Promise<FailedMessageOutcome[]> {
  const destinations = new Map<string, string[]>();
  try {
    const taken = new Set(
      await admin.take(scope.errorQueue, chunk, (message) => {
        const list = destinations.get(message.id) ?? [];
        destinations.set(message.id, list);
        return move.replace(message, list);
      }),
    );
    return chunk.map((id): FailedMessageOutcome => {
      if (!taken.has(id)) return { id, status: 'not-found' };
      return move.status === 'retried' ? { id, status: 'retried', queues: destinations.get(id) ?? [] } : { id, status: move.status };
    });
  } catch (thrown) {
    if (chunk.length !== 1 || !isSwitchyardError(thrown)) throw thrown;
    const id = chunk[0]!;
    return [failedOutcome(scope, id, destinations.get(id)?.at(-1), thrown)];
  }
}

function failedOutcome({ transport, errorQueue }: ErrorQueueScope, id: string, queue: string | undefined, thrown: SwitchyardError): FailedMessageOutcome {
  if (!isSwitchyardError(thrown, ErrorCodes.QUEUE_NOT_FOUND)) return { id, status: 'failed', queue, error: thrown };
  const error = new SwitchyardError(
    ErrorCodes.QUEUE_NOT_FOUND,
    `Cannot move message ${id} to ${queue ?? '(unknown)'}: that queue does not exist on the ${transport.name} transport. The message stays in ${errorQueue}.`,
    { fix: 'Start the endpoint that owns that queue (it creates it on start) and retry again, or delete the message.', cause: thrown },
  );
  return { id, status: 'failed', queue, error };
}

/** Back to the queue it failed in, failure headers removed, the manual retry recorded. */
function retryMove(at: Date): Move {
  return {
    status: 'retried',
    replace(message, queues) {
      const queue = message.headers[FailureHeaders.FailedQueue];
      if (queue === undefined || queue.length === 0) {
        throw new SwitchyardError(ErrorCodes.INVALID_HEADER, `Failed message ${message.id} has no ${FailureHeaders.FailedQueue} header, so the queue to return it to is unknown.`, {
          fix: 'Inspect it with `switchyard errors show`; delete it, or re-send its body to the right endpoint yourself.',
        });
      }
      if (queues.includes(queue)) return []; // a duplicate of a copy already being returned
      queues.push(queue);
      return [{ destination: queue, message: { id: message.id, headers: manualRetryHeaders(message.headers, at), body: message.body } }];
    },
  };
}

const deleteMove: Move = { status: 'deleted', replace: () => [] };

function archiveMove(archiveQueue: Address, at: Date): Move {
  const stamp = at.toISOString();
  return {
    status: 'archived',
    replace(message, queues) {
      queues.push(archiveQueue);
      return [{ destination: archiveQueue, message: { ...message, headers: { ...message.headers, [FailureHeaders.ArchivedAt]: stamp } } }];
    },
  };
}

export function failedMessages(transport: Transport, options: FailedMessagesOptions = {}): FailedMessages {
  const errorQueue: Address = checkName('Error queue', options.errorQueue ?? 'error');
  const archiveQueue: Address = checkName('Archive queue', options.archiveQueue ?? `${errorQueue}.archive`);
  const now = options.now ?? (() => new Date(systemClock.now()));
  const scope: ErrorQueueScope = { transport, errorQueue, pageSize: options.pageSize ?? 500 };
  const matching = async (filter: FailedMessageFilter) => {
    const ids: string[] = [];
    for await (const failed of scan(scope, await requireErrorQueue(scope))) if (matchesFilter(failed, filter)) ids.push(failed.id);
    return ids;
  };
  return {
    errorQueue,
    archiveQueue,
    async list(listOptions = {}) {
      const offset = checkPaging('offset', listOptions.offset ?? 0, Number.MAX_SAFE_INTEGER);
      const limit = checkPaging('limit', listOptions.limit ?? 50, MAX_LIMIT);
      // No endpoint with this error queue has started yet: nothing has failed.
      if (!(await transport.queueExists(errorQueue))) return { messages: [], total: 0, offset, limit };
      const messages: FailedMessageSummary[] = [];
      let total = 0;
      for await (const failed of scan(scope, await requireErrorQueue(scope))) {
        if (!matchesFilter(failed, listOptions)) continue;
        if (total >= offset && messages.length < limit) messages.push(summaryOf(failed));
        total += 1;
      }
      return { messages, total, offset, limit };
    },
    async show(id) {
      for await (const failed of scan(scope, await requireErrorQueue(scope))) if (failed.id === id) return failed;
      return undefined;
    },
    retry: (ids) => takeInChunks(scope, ids, retryMove(now())),
    retryAll: async (filter = {}) => takeInChunks(scope, await matching(filter), retryMove(now())),
    delete: (ids) => takeInChunks(scope, ids, deleteMove),
    async archive(ids) {
      await transport.createQueue(archiveQueue);
      return takeInChunks(scope, ids, archiveMove(archiveQueue, now()));
    },
  };
}
