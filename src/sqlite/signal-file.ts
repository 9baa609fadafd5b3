/**
 * A one-byte file that processes touch to wake each other (fs.watch, inotify on Linux): the
 * cross-process doorbell behind QueueSignals. All signal files of a database live in
 * `<db>-switchyard-signals/`. A doorbell is only a hint: every waiter keeps a fallback timer.
 */
import { closeSync, constants, mkdirSync, openSync, watch, writeSync, type FSWatcher } from 'node:fs';
import path from 'node:path';

const TOUCH = Buffer.from([1]);

export function signalDirectory(dbPath: string): string {
  return `${dbPath}-switchyard-signals`;
}

export class SignalFile {
  private fd: number | undefined;

  constructor(private readonly file: string) {}

  /** Rings the bell. Failures are ignored: waiters then find out by their fallback timer. */
  touch(): void {
    try {
      // Not O_APPEND: the byte is rewritten in place, so the file never grows.
      writeSync(this.open(), TOUCH, 0, 1, 0);
    } catch {
      this.closeFd();
    }
  }

  /**
   * Watches the file (creating it): `onTouch` for every touch; `onLost` once if the file was
   * replaced or removed or the watch failed, after which the caller may watch again.
   */
  watch(onTouch: () => void, onLost: () => void): FSWatcher | undefined {
    let watcher: FSWatcher;
    try {
      this.open();
      watcher = watch(this.file, { persistent: false }, (event) => {
        onTouch();
        if (event === 'rename') lost();
      });
    } catch {
      this.closeFd();
      return undefined;
    }
    let gone = false;
    const lost = () => {
      if (gone) return;
      gone = true;
      watcher.close();
      this.closeFd();
      onLost();
    };
    watcher.on('error', lost);
    return watcher;
  }

  close(): void {
    this.closeFd();
  }

  private open(): number {
    if (this.fd === undefined) {
      mkdirSync(path.dirname(this.file), { recursive: true });
      this.fd = openSync(this.file, constants.O_RDWR | constants.O_CREAT, 0o644);
    }
    return this.fd;
  }

  private closeFd(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }
}
