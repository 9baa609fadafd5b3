/**
 * Heartbeats: each instance records that it is alive, with its version and host, as a message in
 * a heartbeat queue (default `switchyard.heartbeats`) — the base a dashboard reads.
 *
 * Where the transport can inspect its queues (QueueAdmin: SQLite, memory, PostgreSQL) the queue
 * is a registry: each beat replaces the instance's previous one in one transaction, and a
 * graceful stop removes it, so the queue holds one record per instance and a crashed instance's
 * record shows as expired (`readHeartbeats`). Elsewhere each beat is a new message and a stop
 * sends a last one with status `stopped`: something must consume the queue.
 */
import { parseBody } from '../core/envelope.js';
import { asError, ErrorCodes, SwitchyardError } from '../core/errors.js';
import type { EndpointFeature, FeatureHost } from '../core/feature.js';
import { checkName, type Address } from '../core/identity.js';
import type { Transport } from '../core/transport.js';

export interface HeartbeatOptions {
  /** The queue heartbeats go to (default `switchyard.heartbeats`). */
  queue?: string;
  /** How often an instance beats (default 10000 ms). */
  intervalMs?: number;
  /** The application's version (default: npm's `npm_package_version`, else `unknown`). */
  version?: string;
}

export interface Heartbeat {
  readonly endpoint: string;
  readonly instance: string;
  readonly host: string;
  readonly pid: number;
  readonly version: string;
  readonly status: 'running' | 'stopped';
  /** ISO times. A record past `expiresAt` (three intervals after it was sent) is from an instance that stopped beating. */
  readonly startedAt: string;
  readonly sentAt: string;
  readonly expiresAt: string;
}

export const DEFAULT_HEARTBEAT_QUEUE = 'switchyard.heartbeats';
/** Heartbeats are typed `Switchyard.Heartbeat`, with this intent. */
const INTENT = 'heartbeat';

function settings(options: HeartbeatOptions) {
  const intervalMs = options.intervalMs ?? 10_000;
  if (!Number.isInteger(intervalMs) || intervalMs < 10) {
    throw new SwitchyardError(ErrorCodes.CONFIG, `Heartbeat option \`intervalMs\` is ${String(intervalMs)}.`, { fix: 'Use a whole number of milliseconds, 10 or more (default 10000).' });
  }
  const queue = checkName('Heartbeat queue (option `queue`)', options.queue ?? DEFAULT_HEARTBEAT_QUEUE);
  return { intervalMs, queue, version: options.version ?? process.env.npm_package_version ?? 'unknown' };
}

export function heartbeats(options: HeartbeatOptions = {}): EndpointFeature {
  const { intervalMs, queue, version } = settings(options);
  const startedAt = new Date().toISOString();
  let timer: NodeJS.Timeout | undefined;
  let previous: string | undefined;
  let beating: Promise<void> = Promise.resolve();

  const record = (host: FeatureHost, status: Heartbeat['status']): Heartbeat => {
    const now = Date.now();
    const { endpoint, id, host: machine, pid } = host.identity;
    return { endpoint, instance: id, host: machine, pid, version, status, startedAt, sentAt: new Date(now).toISOString(), expiresAt: new Date(now + 3 * intervalMs).toISOString() };
  };
  const beat = async (host: FeatureHost) => {
    const message = host.controlMessage(INTENT, {}, record(host, 'running'));
    const admin = host.transport.admin;
    const replaced = admin && previous !== undefined ? await admin.take(queue, [previous], () => [{ destination: queue, message }]) : [];
    // The first beat, or the previous record was taken by a reader: a new record.
    if (replaced.length === 0) await host.dispatch([{ destination: queue, message }]);
    previous = message.id;
  };
  const beatLogged = (host: FeatureHost) => {
    beating = beating.then(() => beat(host)).catch((error: unknown) => host.logger.warn({ err: asError(error) }, `heartbeat to ${queue} failed: ${asError(error).message}`));
    return beating;
  };

  return {
    name: 'heartbeats',
    async setup(host) {
      await host.transport.createQueue(queue);
      if (!host.transport.admin) host.logger.info(`the ${host.transport.name} transport cannot replace records: every heartbeat is a new message in ${queue}; consume that queue`);
    },
    async start(host) {
      await beatLogged(host);
      timer = setInterval(() => void beatLogged(host), intervalMs);
      timer.unref();
    },
    async stopping(host) {
      clearInterval(timer);
      await beating;
      const admin = host.transport.admin;
      try {
        if (admin && previous !== undefined) await admin.take(queue, [previous]);
        else await host.dispatch([{ destination: queue, message: host.controlMessage(INTENT, {}, record(host, 'stopped')) }]);
      } catch (error) {
        // The record then expires by itself.
        host.logger.warn({ err: asError(error) }, `removing the heartbeat from ${queue} failed: ${asError(error).message}`);
      }
    },
  };
}

const FIELDS = ['endpoint', 'instance', 'host', 'version', 'status', 'startedAt', 'sentAt', 'expiresAt'] as const;

function readRecord(body: string): Heartbeat | undefined {
  let value: unknown;
  try {
    value = parseBody(body);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null) return undefined;
  const record = value as Record<string, unknown>;
  if (!FIELDS.every((f) => typeof record[f] === 'string') || typeof record.pid !== 'number') return undefined;
  return record as unknown as Heartbeat;
}

/**
 * The instances' latest heartbeats in `queue` (needs QueueAdmin), each marked `alive` when it has
 * not expired; `unreadable` counts messages in the queue that are not heartbeats.
 */
export async function readHeartbeats(transport: Transport, options: { queue?: Address; now?: number } = {}): Promise<{ instances: (Heartbeat & { alive: boolean })[]; unreadable: number }> {
  const queue = options.queue ?? DEFAULT_HEARTBEAT_QUEUE;
  if (!transport.admin) {
    throw new SwitchyardError(ErrorCodes.CONFIG, `The ${transport.name} transport cannot list queued messages, so heartbeats cannot be read from ${queue}.`, {
      fix: `Consume ${queue} as an endpoint instead, or keep heartbeats on a transport with queue admin (sqlite, memory, postgres).`,
    });
  }
  const now = options.now ?? Date.now();
  const latest = new Map<string, Heartbeat>();
  let unreadable = 0;
  for (let offset = 0; ; offset += 500) {
    const page = await transport.admin.peek(queue, { offset, limit: 500 });
    for (const message of page) {
      const record = readRecord(message.body);
      if (!record) unreadable += 1;
      else if ((latest.get(record.instance)?.sentAt ?? '') < record.sentAt) latest.set(record.instance, record);
    }
    if (page.length < 500) break;
  }
  const instances = [...latest.values()].map((r) => ({ ...r, alive: r.status === 'running' && Date.parse(r.expiresAt) > now }));
  return { instances: instances.sort((a, b) => a.instance.localeCompare(b.instance)), unreadable };
}
