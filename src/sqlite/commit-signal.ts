/**
 * Wakes receivers when any process makes a message available, without hot polling.
 *
 * After a commit that makes messages available (a send, a completion with sends, an abandon, a
 * move), the writer touches one byte of `<db>-switchyard-signal`; every receiving process
 * `fs.watch`es that file. The touch comes after the commit, so a woken receiver can look with a
 * plain read (no write lock) and see the messages. Watching the `-wal` file instead would wake
 * every receiver on every commit, claims included, and before the commit is visible (the event
 * comes with the write, the commit after the fsync). Touches in one tick are coalesced. The watch
 * re-arms if the file is replaced, and the caller keeps a slow fallback poll, so nothing depends
 * on an event arriving (commits by other tools are seen by the poll).
 */
import { closeSync, constants, openSync, watch, writeSync, type FSWatcher } from 'node:fs';

const TOUCH = Buffer.from([1]);

export class CommitSignal {
  private readonly file: string;
  private fd: number | undefined;
  private watcher: FSWatcher | undefined;
  private readonly listeners = new Set<() => void>();
  private rearm: NodeJS.Timeout | undefined;
  private touchScheduled = false;
  private closed = false;

  constructor(dbPath: string) {
    this.file = `${dbPath}-switchyard-signal`;
  }

  start(): void {
    // Not O_APPEND: the byte is rewritten in place, so the file never grows.
    this.fd = openSync(this.file, constants.O_RDWR | constants.O_CREAT, 0o644);
    this.arm();
  }

  private arm(): void {
    if (this.closed) return;
    try {
      this.watcher = watch(this.file, { persistent: false }, (event) => {
        this.wakeLocal();
        if (event === 'rename') this.restart();
      });
      this.watcher.on('error', () => this.restart());
    } catch {
      this.restart();
    }
  }

  private restart(): void {
    this.watcher?.close();
    this.watcher = undefined;
    if (this.closed || this.rearm) return;
    this.rearm = setTimeout(() => {
      this.rearm = undefined;
      this.arm();
    }, 50).unref();
  }

  /** Messages became available (call after the commit): wakes this process now, the others by the touch. */
  notify(): void {
    this.wakeLocal();
    if (this.touchScheduled || this.closed) return;
    this.touchScheduled = true;
    setImmediate(() => {
      this.touchScheduled = false;
      if (this.closed || this.fd === undefined) return;
      try {
        writeSync(this.fd, TOUCH, 0, 1, 0);
      } catch {
        // Other processes then find the messages by their fallback poll.
      }
    });
  }

  private wakeLocal(): void {
    for (const fn of [...this.listeners]) fn();
  }

  subscribe(fn: () => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  close(): void {
    this.closed = true;
    if (this.rearm) clearTimeout(this.rearm);
    this.watcher?.close();
    this.listeners.clear();
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }
}
