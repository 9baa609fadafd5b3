/**
 * One LISTEN connection per store, shared by its watched datasets. The connection is a wake-up
 * hint only: when it drops it reconnects with jittered backoff and then wakes every watcher, so
 * replicas run a catch-up read for whatever was committed meanwhile.
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
  let closed = false;

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
        const lost = () => {
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
      } catch {
        failures++;
        scheduleReconnect();
      } finally {
        connecting = undefined;
      }
    })();
    return connecting;
  };

  return {
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
