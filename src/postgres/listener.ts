/**
 * One LISTEN connection per store or transport, shared by everything it wakes (datasets, queues),
 * keyed by what a notification names. The connection is a wake-up hint only: when it drops it
 * reconnects with jittered backoff and then wakes every watcher, so they run a catch-up read for
 * whatever was committed meanwhile.
 */
import type pg from 'pg';

export interface ListenerOptions<Hint> {
  channel: string;
  /** What a notification's payload names (a dataset, a queue) and what it carries, if anything. */
  parse(payload: string): { key: string; hint: Hint | undefined };
  connect(): Promise<pg.Client>;
}

export function createListener<Hint = never>(options: ListenerOptions<Hint>) {
  const handlers = new Map<string, Set<(hint?: Hint) => void>>();
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
          const { key, hint } = options.parse(msg.payload);
          for (const wake of handlers.get(key) ?? []) wake(hint);
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

  /** Calls `onWake` for every notification naming `key` (and after a reconnect) until the returned function is called. */
  const watch = (key: string, onWake: (hint?: Hint) => void): (() => void) => {
    let set = handlers.get(key);
    if (!set) handlers.set(key, (set = new Set()));
    const wake = (hint?: Hint) => onWake(hint);
    set.add(wake);
    return () => {
      set.delete(wake);
      if (set.size === 0 && handlers.get(key) === set) handlers.delete(key);
    };
  };

  return {
    /** Connects now unless connected; a failed attempt schedules retries and resolves. */
    connect(): Promise<void> {
      return client ? Promise.resolve() : connect();
    },
    watch,
    /** watch(), after the LISTEN connection is up (or its first attempt failed and a retry is scheduled). */
    async add(key: string, onWake: (hint?: Hint) => void): Promise<() => Promise<void>> {
      const unwatch = watch(key, onWake);
      if (!client) await connect();
      return async () => unwatch();
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
