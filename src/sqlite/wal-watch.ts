/**
 * Wakes receivers when any process commits to the database, without hot polling: every commit
 * in WAL mode writes the `-wal` file, and fs.watch reports it. The file can be removed and
 * recreated (last connection closes with a truncating checkpoint), so the watch re-arms; the
 * caller also keeps a slow fallback poll so nothing depends on an event arriving.
 */
import { watch, type FSWatcher } from 'node:fs';

export class WalWatcher {
  private watcher: FSWatcher | undefined;
  private readonly listeners = new Set<() => void>();
  private rearm: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(private readonly dbPath: string) {}

  start(): void {
    this.arm();
  }

  private arm(): void {
    if (this.closed) return;
    try {
      this.watcher = watch(`${this.dbPath}-wal`, { persistent: false }, (event) => {
        this.emit();
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

  emit(): void {
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
  }
}
