/**
 * One LISTEN connection per store or transport, shared by everything it wakes (datasets, queues),
 * keyed by what a notification names. The connection is a wake-up hint only: when it drops, or
 * cannot be opened (refused, "too many clients", a restart), it reconnects with jittered backoff
 * and then wakes every watcher, so they run a catch-up read for whatever was committed meanwhile.
 *
 * It can also be a store's only connection: `exclusive` runs a body of queries on the same client,
 * one body at a time, so a transaction is never interleaved with another caller's statements. While
 * there is no connection such a body fails at once with the last connect error (the caller retries
 * with its own backoff); it never waits for the reconnect and never throws at the process.
 */
import type pg from 'pg';
import { createBackoff } from '../core/backoff.js';

export interface ListenerOptions<Hint> {
  channel: string;
  /** What a notification's payload names (a dataset, a queue) and what it carries, if anything. */
  parse(payload: string): { key: string; hint: Hint | undefined };
  /** Opens a client (with an 'error' handler, so a dropped connection never throws at the process). */
  connect(): Promise<pg.Client>;
}

type Wake<Hint> = (hint?: Hint) => void;

/** Who is woken for which key. */
function createWatchers<Hint>() {
  const handlers = new Map<string, Set<Wake<Hint>>>();
  return {
    /** Calls `onWake` for every notification naming `key` (and after a reconnect) until the returned function is called. */
    watch(key: string, onWake: Wake<Hint>): () => void {
      let set = handlers.get(key);
      if (!set) handlers.set(key, (set = new Set()));
      const wake: Wake<Hint> = (hint) => onWake(hint);
      set.add(wake);
      return () => {
        set.delete(wake);
        if (set.size === 0 && handlers.get(key) === set) handlers.delete(key);
      };
    },
    wake(key: string, hint: Hint | undefined) {
      for (const wake of handlers.get(key) ?? []) wake(hint);
    },
    wakeAll() {
      for (const set of handlers.values()) for (const wake of set) wake();
    },
  };
}
type Watchers<Hint> = ReturnType<typeof createWatchers<Hint>>;

/** Routes the client's notifications to the watchers and LISTENs; `lost` is called when the client errors or ends. */
async function listenOn<Hint>(c: pg.Client, options: ListenerOptions<Hint>, watchers: Watchers<Hint>, lost: (error?: unknown) => void) {
  c.on('error', lost);
  c.on('end', lost);
  c.on('notification', (msg) => {
    if (msg.channel !== options.channel || msg.payload === undefined) return;
    const { key, hint } = options.parse(msg.payload);
    watchers.wake(key, hint);
  });
  await c.query(`LISTEN "${options.channel}"`).catch((error: unknown) => {
    c.end().catch(() => undefined);
    throw error;
  });
}

/** Runs bodies one after another on the client `connected` gives: a failed body does not stop the next. */
function createExclusiveQueue(connected: () => Promise<pg.Client>) {
  let queue: Promise<unknown> = Promise.resolve();
  return <T>(body: (client: pg.Client) => Promise<T>): Promise<T> => {
    const run = queue.then(async () => body(await connected()));
    queue = run.catch(() => undefined);
    return run;
  };
}

export function createListener<Hint = never>(options: ListenerOptions<Hint>) {
  const watchers = createWatchers<Hint>();
  // Reconnects 100 ms doubling to 5 s after a drop or a refused connect (both jittered).
  const backoff = createBackoff(() => void connect(), 100, 5000);
  let lastError: unknown;
  const failed = (error: unknown) => {
    lastError = error;
    backoff.failed();
  };
  let client: pg.Client | undefined;
  let connecting: Promise<void> | undefined;
  let closed = false;

  /**
   * Opens the client, LISTENs, and swaps it in; a reconnect wakes every watcher. A query that
   * found no client may have reconnected before the backoff timer fired: then the timer finds a
   * client and opens none (a second one would be left open, never ended).
   */
  const open = async () => {
    if (client) return;
    const c = await options.connect();
    if (closed) return void (await c.end().catch(() => undefined));
    await listenOn(c, options, watchers, (error) => {
      if (client !== c) return;
      client = undefined;
      c.end().catch(() => undefined);
      failed(error ?? new Error('the connection ended'));
    });
    client = c;
    if (backoff.succeeded()) watchers.wakeAll();
  };

  const connect = (): Promise<void> => {
    connecting ??= open()
      .catch(failed)
      .finally(() => {
        connecting = undefined;
      });
    return connecting;
  };

  /** The connected client, connecting once if there is none; throws the last connect error when it cannot. */
  const connected = async (): Promise<pg.Client> => {
    if (closed) throw new Error('the PostgreSQL connection is closed');
    if (!client) await connect();
    if (!client) throw new Error(`cannot connect to PostgreSQL: ${String(lastError)}`);
    return client;
  };

  return {
    /** Connects now unless connected; a failed attempt schedules retries and resolves. */
    connect(): Promise<void> {
      return client ? Promise.resolve() : connect();
    },
    watch: watchers.watch,
    /** watch(), after the LISTEN connection is up (or its first attempt failed and a retry is scheduled). */
    async add(key: string, onWake: Wake<Hint>): Promise<() => Promise<void>> {
      const unwatch = watchers.watch(key, onWake);
      if (!client) await connect();
      return async () => unwatch();
    },
    /** Runs `body` on the listening connection, after every earlier body finished. */
    exclusive: createExclusiveQueue(connected),
    async close(): Promise<void> {
      closed = true;
      backoff.stop();
      await connecting;
      const c = client;
      client = undefined;
      if (c) await c.end().catch(() => undefined);
    },
  };
}
