/** One row of `npm run bench -- --json`: a contract later benchmarks extend, never break. */
export interface BenchResult {
  name: string;
  transport: string;
  messages: number;
  msgsPerSec: number;
  p50Ms: number | null;
  p99Ms: number | null;
  /** What the result is compared with, measured in the same run. */
  baseline: string;
  baselineMsgsPerSec: number;
  /** msgsPerSec / baselineMsgsPerSec */
  ratio: number;
  /** Durability and other settings the numbers depend on. */
  settings?: Record<string, string | number | boolean>;
}

export interface BenchSuite {
  /** Result names this suite produces, so `--only <prefix>` can skip it without running it. */
  names: readonly string[];
  run(options: { only: (name: string) => boolean; log: (line: string) => void }): Promise<BenchResult[]>;
}
