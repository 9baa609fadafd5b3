/**
 * Wakes processes waiting for the database's write lock when a process commits.
 *
 * Every group commit touches `<db>-switchyard-signals/lock` right after COMMIT; a process whose
 * BEGIN IMMEDIATE found the lock busy watches that file until its next attempt. Before, a waiter
 * only tried again on a 1 ms timer (it still does, as the fallback: commits by other tools touch
 * nothing), and under contention every commit on a message's path waited for that timer.
 * The watch is armed only while waiting, so a process that holds or does not want the lock is
 * not woken by other processes' commits.
 */
import path from 'node:path';
import type { FSWatcher } from 'node:fs';
import { SignalFile, signalDirectory } from './signal-file.js';

export class LockSignal {
  private readonly bell: SignalFile;
  private watcher: FSWatcher | undefined;
  private waiter: (() => void) | undefined;

  constructor(dbPath: string) {
    this.bell = new SignalFile(path.join(signalDirectory(dbPath), 'lock'));
  }

  /** Call right after a commit released the lock. */
  released(): void {
    this.bell.touch();
  }

  /** Calls `fn` once, at the next commit by any process (or never: keep a timer too). */
  waitOnce(fn: () => void): void {
    this.waiter = fn;
    this.watcher ??= this.bell.watch(
      () => {
        const waiter = this.waiter;
        this.stopWaiting();
        waiter?.();
      },
      () => (this.watcher = undefined),
    );
  }

  stopWaiting(): void {
    this.waiter = undefined;
    this.watcher?.close();
    this.watcher = undefined;
  }

  close(): void {
    this.stopWaiting();
    this.bell.close();
  }
}
