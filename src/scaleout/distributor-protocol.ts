/**
 * The distributor's wire protocol, shared by the distributor and its workers (docs/distributor.md).
 *
 * Addresses: the data queue is the logical endpoint's address (`Sales`); the control queue is
 * `Sales.distributor`. Workers send `ready` control messages (intent `ready`) to the control
 * queue; their body is one of four kinds:
 *   start     { worker, session, capacity: K }   new session: replaces the worker's entries
 *   ready     { worker, session, capacity: 1, slot } one forwarded message settled: slot comes back
 *   ready     { worker, session, capacity: N, slots: [N ids] } N settled (coalesced): N slots back
 *   heartbeat { worker, session, capacity: K }   still alive (and revives a worker declared dead)
 *   withdraw  { worker, session, capacity: 0 }   stopping: drop free slots, hand queued messages back
 * Forwarded messages keep their headers and gain two: the worker session and the slot id. The
 * worker echoes the slot id in its ready, so a slot is returned at most once, whatever happens.
 */
import { checkBodySize, DEFAULT_LIMITS, parseBody } from '../core/envelope.js';
import { ErrorCodes, SwitchyardError } from '../core/errors.js';
import { Headers } from '../core/headers.js';
import type { Address, EndpointName } from '../core/identity.js';
import type { TransportMessage } from '../core/transport.js';

export const DistributorHeaders = {
  /** The worker session the forwarded message was assigned to. */
  Session: 'sy1-distributor-session',
  /** The ready slot the forwarded message consumed; the worker's ready returns it. */
  Slot: 'sy1-distributor-slot',
} as const;

/** The distributor's control queue for a logical endpoint. */
export function controlAddress(endpoint: EndpointName): Address {
  return `${endpoint}.distributor`;
}

export type ReadyKind = 'start' | 'ready' | 'heartbeat' | 'withdraw';

export interface ReadyMessage {
  readonly kind: ReadyKind;
  /** The worker's own queue. */
  readonly worker: Address;
  readonly session: string;
  /** start/heartbeat: the worker's capacity; ready: the slots it returns; withdraw: 0. */
  readonly capacity: number;
  /** ready only: the slots the settled messages consumed (one in a pre-coalescing worker's `slot`). */
  readonly slots?: readonly string[];
}

/** Most slots one coalesced ready may return (a capacity is at most 10000 too). */
const MAX_READY_SLOTS = 10_000;

const TOKEN = /^[A-Za-z0-9_-]{1,64}$/;
const WORKER = /^[A-Za-z0-9][A-Za-z0-9._\-@]{0,199}$/;
const KINDS: readonly ReadyKind[] = ['start', 'ready', 'heartbeat', 'withdraw'];

export function invalidReady(reason: string): SwitchyardError {
  return new SwitchyardError(ErrorCodes.READY_INVALID, `Invalid ready message: ${reason}.`, {
    fix: 'Ready messages come from distributorWorker(); check the sender named in the originating-endpoint header. The message is in the error queue for inspection.',
  });
}

/** Reads a ready message off the wire; throws SY_ERR_READY_INVALID with the reason. */
export function parseReady(message: TransportMessage, endpoint: EndpointName): ReadyMessage {
  if (message.headers[Headers.Intent] !== 'ready') throw invalidReady(`intent is ${JSON.stringify(message.headers[Headers.Intent] ?? null)}, not "ready"`);
  checkBodySize(message.body, DEFAULT_LIMITS);
  let raw: unknown;
  try {
    raw = parseBody(message.body);
  } catch {
    throw invalidReady('the body is not JSON');
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw invalidReady('the body is not an object');
  const body = raw as Record<string, unknown>;
  const kind = body.kind as ReadyKind;
  if (!KINDS.includes(kind)) throw invalidReady(`kind ${JSON.stringify(body.kind ?? null)} is not one of ${KINDS.join(', ')}`);
  const worker = body.worker;
  // A worker address decides where data goes: only this endpoint's instance queues are accepted.
  if (typeof worker !== 'string' || !WORKER.test(worker) || !worker.startsWith(`${endpoint}@`)) {
    throw invalidReady(`worker ${JSON.stringify(worker ?? null)} is not an instance address of ${endpoint} (${endpoint}@<discriminator>)`);
  }
  if (typeof body.session !== 'string' || !TOKEN.test(body.session)) throw invalidReady(`session ${JSON.stringify(body.session ?? null)} is missing or invalid`);
  const capacity = body.capacity;
  if (typeof capacity !== 'number' || !Number.isInteger(capacity) || capacity < 0 || capacity > 10_000) {
    throw invalidReady(`capacity ${JSON.stringify(capacity ?? null)} is missing, negative or not a whole number up to 10000`);
  }
  if (kind === 'ready') return { kind, worker, session: body.session, capacity, slots: readySlots(body, capacity) };
  const expected = kind === 'withdraw' ? capacity === 0 : capacity >= 1;
  if (!expected) throw invalidReady(`capacity ${capacity} does not fit a ${kind} message (start/heartbeat: >= 1, withdraw: 0)`);
  return { kind, worker, session: body.session, capacity };
}

/** A ready's slots: `slots` (coalesced, capacity = their count) or the one-slot form `slot` (capacity 1). */
function readySlots(body: Record<string, unknown>, capacity: number): readonly string[] {
  if (body.slots === undefined) {
    if (capacity !== 1) throw invalidReady(`capacity ${capacity} does not fit a one-slot ready message (capacity 1 with \`slot\`, or \`slots\` with capacity = their count)`);
    if (typeof body.slot !== 'string' || !TOKEN.test(body.slot)) throw invalidReady(`slot ${JSON.stringify(body.slot ?? null)} is missing or invalid`);
    return [body.slot];
  }
  const slots = body.slots;
  if (!Array.isArray(slots) || slots.length === 0 || slots.length > MAX_READY_SLOTS) throw invalidReady(`slots is not a list of 1 to ${MAX_READY_SLOTS} slot ids`);
  if (capacity !== slots.length) throw invalidReady(`capacity ${capacity} is not the number of slots returned (${slots.length})`);
  for (const slot of slots) if (typeof slot !== 'string' || !TOKEN.test(slot)) throw invalidReady(`slot ${JSON.stringify(slot)} is invalid`);
  if (new Set(slots).size !== slots.length) throw invalidReady('a slot is listed twice');
  return slots as string[];
}

/** The ready body returning `slots`: the one-slot form for one (understood by every distributor version), else coalesced. */
export function readyBody(worker: Address, session: string, slots: readonly string[]): Record<string, unknown> {
  return slots.length === 1 ? { kind: 'ready', worker, session, capacity: 1, slot: slots[0] } : { kind: 'ready', worker, session, capacity: slots.length, slots };
}

/** The forwarded copy: the same id, body and headers, plus the slot's stamp. */
export function stampForward(message: TransportMessage, session: string, slot: string): TransportMessage {
  return { id: message.id, body: message.body, headers: { ...message.headers, [DistributorHeaders.Session]: session, [DistributorHeaders.Slot]: slot } };
}
