/**
 * `endpoint.health()`: what a probe or a dashboard needs to know about one instance, from what
 * the endpoint already tracks (its status and its receive loop), with no I/O of its own.
 */
import type { InstanceIdentity } from '../core/identity.js';
import type { PumpHealth } from '../core/pump.js';

export type EndpointStatus = 'created' | 'starting' | 'running' | 'stopping' | 'stopped';

export interface EndpointHealth {
  readonly endpoint: string;
  readonly instance: string;
  readonly host: string;
  readonly status: EndpointStatus;
  /** False once the endpoint stopped (or failed to start): restart the process. True while it drains. */
  readonly live: boolean;
  /** Running and, unless send-only, receiving with its last receive having worked: send it work. */
  readonly ready: boolean;
  readonly transport: {
    readonly name: string;
    /** Opened, and no receive has failed since the last one that worked (a send-only endpoint: opened). */
    readonly connected: boolean;
    /** The current streak of failed receives: its error and when it began (ISO time). */
    readonly error?: string;
    readonly failingSince?: string;
  };
  /** The receive loops run. */
  readonly receiving: boolean;
  /** ISO time of the last receive that worked, and of the last that returned a message. */
  readonly lastReceiveAt?: string;
  readonly lastMessageAt?: string;
  readonly handlersInFlight: number;
  /** Messages received ahead of free slots and held (prefetch). */
  readonly prefetched: number;
  /** What features report (EndpointFeature.health), by the key each chose: a hosted distributor's `distributor` (its workers). */
  readonly features?: Readonly<Record<string, unknown>>;
}

const iso = (ms: number | undefined) => (ms === undefined ? undefined : new Date(ms).toISOString());

export function describeHealth(
  identity: InstanceIdentity,
  transport: string,
  status: EndpointStatus,
  pump: PumpHealth | undefined,
  features: Readonly<Record<string, unknown>> = {},
): EndpointHealth {
  const receiving = pump?.receiving ?? false;
  const failing = pump?.receiveError;
  const open = status === 'running' || status === 'stopping';
  // Opened at start; since then, a failing receive is what says it is unreachable.
  const connected = open && failing === undefined;
  return {
    endpoint: identity.endpoint,
    instance: identity.id,
    host: identity.host,
    status,
    live: status !== 'stopped',
    ready: status === 'running' && connected && (pump === undefined || receiving),
    transport: { name: transport, connected, ...(failing ? { error: failing.message, failingSince: iso(failing.since)! } : {}) },
    receiving,
    ...(pump?.lastReceiveAt !== undefined ? { lastReceiveAt: iso(pump.lastReceiveAt)! } : {}),
    ...(pump?.lastMessageAt !== undefined ? { lastMessageAt: iso(pump.lastMessageAt)! } : {}),
    handlersInFlight: pump?.handlersRunning ?? 0,
    prefetched: pump?.held ?? 0,
    ...(Object.keys(features).length > 0 ? { features } : {}),
  };
}
