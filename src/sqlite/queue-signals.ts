/**
 * Wakes the receivers of a queue when any process makes messages available in it, without hot
 * polling and without waking processes that receive from other queues.
 *
 * Queue names hash into BUCKETS signal files, `<db>-switchyard-signals/00` to `3f`. After a commit
 * that makes messages available in some queues (a send, a completion with sends, an abandon, a
 * move), the writer touches the file of each of their buckets; a process watches the buckets of
 * the queues it receives from, from its first receive on. The touch comes after the commit, so a
 * woken receiver can look with a plain read (no write lock) and see the messages.
 *
 * Why per queue: with one file per database, every forward of a distributor and every ready of a
 * worker woke all the other processes (the distributor, every worker, the senders), each to run a
 * read and find nothing. Queues sharing a bucket only cost such a spurious wake-up.
 *
 * A watch re-arms if its file is replaced, and the caller keeps a slow fallback poll, so nothing
 * depends on an event arriving (commits by other tools are seen by the poll).
 */
import path from 'node:path';
import type { FSWatcher } from 'node:fs';
import { SignalFile, signalDirectory } from './signal-file.js';

/** Few enough files to list at a glance; enough that queues rarely share one. */
const BUCKETS = 64;
const REARM_MS = 50;

/** FNV-1a: the same in every process and version (the bucket is part of the on-disk protocol). */
export function bucketOf(queue: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < queue.length; i++) hash = Math.imul(hash ^ queue.charCodeAt(i), 0x01000193);
  return (hash >>> 0) % BUCKETS;
}

interface Bucket {
  readonly bell: SignalFile;
  watcher: FSWatcher | undefined;
  rearm: NodeJS.Timeout | undefined;
}

export class QueueSignals {
  private readonly dir: string;
  private readonly buckets = new Map<number, Bucket>();
  /** Queue -> its local waiters; a queue is listed only while someone waits on it. */
  private readonly listeners = new Map<string, Set<() => void>>();
  private closed = false;

  /** `prefix` names another family of bells in the same folder: the datasets ring `dataset-00` to `dataset-3f`. */
  constructor(dbPath: string, private readonly prefix = '') {
    this.dir = signalDirectory(dbPath);
  }

  /** Messages became available in `queues` (call after the commit): wakes local waiters and other processes now. */
  notify(queues: Iterable<string>): void {
    if (this.closed) return;
    const buckets = new Set<number>();
    for (const queue of new Set(queues)) {
      this.wake(this.listeners.get(queue));
      buckets.add(bucketOf(queue));
    }
    for (const n of buckets) this.bucket(n).bell.touch();
  }

  /** Calls `fn` when messages may have become available in `queue`, until the returned function is called. */
  subscribe(queue: string, fn: () => void): () => void {
    let waiting = this.listeners.get(queue);
    if (!waiting) this.listeners.set(queue, (waiting = new Set()));
    waiting.add(fn);
    this.watch(bucketOf(queue));
    return () => {
      waiting.delete(fn);
      if (waiting.size === 0 && this.listeners.get(queue) === waiting) this.listeners.delete(queue);
    };
  }

  close(): void {
    this.closed = true;
    for (const bucket of this.buckets.values()) {
      if (bucket.rearm) clearTimeout(bucket.rearm);
      bucket.watcher?.close();
      bucket.bell.close();
    }
    this.buckets.clear();
    this.listeners.clear();
  }

  private bucket(n: number): Bucket {
    let bucket = this.buckets.get(n);
    if (!bucket) {
      const bell = new SignalFile(path.join(this.dir, `${this.prefix}${n.toString(16).padStart(2, '0')}`));
      this.buckets.set(n, (bucket = { bell, watcher: undefined, rearm: undefined }));
    }
    return bucket;
  }

  /** Watches a bucket from the first wait on one of its queues on; the receive set of a process is stable. */
  private watch(n: number): void {
    const bucket = this.bucket(n);
    if (bucket.watcher || bucket.rearm || this.closed) return;
    const rearm = () => {
      bucket.watcher = undefined;
      if (this.closed || bucket.rearm) return;
      bucket.rearm = setTimeout(() => {
        bucket.rearm = undefined;
        this.watch(n);
      }, REARM_MS).unref();
    };
    bucket.watcher = bucket.bell.watch(() => this.wakeBucket(n), rearm);
    if (!bucket.watcher) rearm();
  }

  private wakeBucket(n: number): void {
    for (const [queue, waiting] of this.listeners) if (bucketOf(queue) === n) this.wake(waiting);
  }

  private wake(waiting: Set<() => void> | undefined): void {
    if (waiting) for (const fn of [...waiting]) fn();
  }
}
