/**
 * The options every SQLite adapter takes. They live apart from database.ts so that the public
 * declarations never import better-sqlite3: an application compiles against switchyard/sqlite
 * without @types/better-sqlite3 (checked by test/package/packed.test.ts).
 */
export type Synchronous = 'full' | 'normal';

export interface SqliteOptions {
  /** Database file; every process of the system opens the same file. */
  path: string;
  /**
   * `full` (default): what is acknowledged survives power loss. `normal`: survives a process
   * crash, but a power loss may roll back the last commits. Measure before choosing `normal`.
   */
  synchronous?: Synchronous;
  /** How long a writer waits for another process's write lock before failing. */
  busyTimeoutMs?: number;
}
