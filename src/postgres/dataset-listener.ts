/**
 * (The dataset store's own listener: unlike listener.ts it can also run every query of a
 * single-connection store; merging the two is left to do.)
 * One connection per store, shared by its watched datasets: it LISTENs, and in the store's
 * single-connection mode it also runs every query (`exclusive`, one at a time, so a transaction
 * is never interleaved with another caller's statements). When it drops, or cannot be opened
 * (refused, "too many clients", a restart), it reconnects with jittered backoff and then wakes
 * every watcher, so replicas run a catch-up read for whatever was committed meanwhile; queries
 * meanwhile fail at once and the replica's sync loop retries them with its own backoff.
 */
import type pg from 'pg';
import { decodeHint } from '../datasets/records.js';
import type { LogRecord } from '../datasets/store.js';

/** Payload: "<dataset>" or "<dataset>\n<version>@<generation>\n<record>". */
function parse(payload: string): { dataset: string; hint: LogRecord | undefined } {
  const a = payload.indexOf('\n');
  if (a < 0) return { dataset: payload, hint: undefined };
  const dataset = payload.slice(0, a);
  const b = payload.indexOf('\n', a + 1);
  return { dataset, hint: b < 0 ? undefined : decodeHint(dataset, payload.slice(a + 1, b), payload.slice(b + 1)) };
}

export interface ListenerOptions {
  channel: string;
  /** Pass on the record a notification carries (see PostgresDatasetStoreOptions.wakeRecords). */
  wakeRecords: boolean;
  connect(): Promise<pg.Client>;
}

export function createListener(options: ListenerOptions) {
  const handlers = new Map<string, Set<(hint?: LogRecord) => void>>();
  let client: pg.Client | undefined;
  let connecting: Promise<void> | undefined;
  let retryTimer: ReturnType<typeof setTimeout> | undefined;
  let failures = 0;
  let lastError: unknown;
  let closed = false;
  let queue: Promise<unknown> = Promise.resolve();

  const wakeAll = () => {
    for (const set of handlers.values()) for (const wake of set) wake();
  };

  const scheduleReconnect = () => {
    if (closed || retryTimer) return;
    const base = Math.min(5000, 100 * 2 ** Math.min(failures, 6));
    retryTimer = setTimeout(() => {
      retryTimer = undefined;
      void connect();
    }, base / 2 + Math.random() * base);
    retryTimer.unref?.();
  };

  const connect = (): Promise<void> => {
    connecting ??= (async () => {
      try {
        const c = await options.connect();
        if (closed) {
          await c.end().catch(() => undefined);
          return;
        }
        const lost = (error?: unknown) => {
          lastError = error ?? new Error('the connection ended');
          if (client !== c) return;
          client = undefined;
          c.end().catch(() => undefined);
          failures++;
          scheduleReconnect();
        };
        c.on('error', lost);
        c.on('end', lost);
        c.on('notification', (msg) => {
          if (msg.channel !== options.channel || msg.payload === undefined) return;
          const { dataset, hint } = parse(msg.payload);
          for (const wake of handlers.get(dataset) ?? []) wake(options.wakeRecords ? hint : undefined);
        });
        await c.query(`LISTEN "${options.channel}"`);
        client = c;
        const reconnected = failures > 0;
        failures = 0;
        if (reconnected) wakeAll();
      } catch (error) {
        lastError = error;
        failures++;
        scheduleReconnect();
      } finally {
        connecting = undefined;
      }
    })();
    return connecting;
  };

  /** The connected client, connecting once if there is none; throws the last connect error when it cannot. */
  const connected = async (): Promise<pg.Client> => {
    if (closed) throw new Error('the PostgreSQL dataset store is closed');
    if (!client) await connect();
    if (!client) throw new Error(`cannot connect to PostgreSQL: ${String(lastError)}`);
    return client;
  };

  return {
    /** Runs `body` on the connection, after every earlier body finished. */
    exclusive<T>(body: (client: pg.Client) => Promise<T>): Promise<T> {
      const run = queue.then(async () => body(await connected()));
      queue = run.catch(() => undefined);
      return run;
    },
    async add(dataset: string, onWake: (hint?: LogRecord) => void): Promise<() => Promise<void>> {
      let set = handlers.get(dataset);
      if (!set) handlers.set(dataset, (set = new Set()));
      const wake = (hint?: LogRecord) => onWake(hint);
      set.add(wake);
      if (!client) await connect();
      return async () => {
        set.delete(wake);
        if (set.size === 0) handlers.delete(dataset);
      };
    },
    async close(): Promise<void> {
      closed = true;
      clearTimeout(retryTimer);
      await connecting;
      const c = client;
      client = undefined;
      if (c) await c.end().catch(() => undefined);
    },
  };
}
