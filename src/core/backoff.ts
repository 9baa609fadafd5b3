/**
 * Retrying after a jittered exponential backoff, so that many instances that lost the same
 * server do not come back in step. The delay after the n-th failure in a row is `baseMs * 2^n`
 * (n at most 6), capped at `maxMs`, then drawn from half to one and a half of that.
 */
export function backoffDelay(failures: number, baseMs: number, maxMs: number): number {
  const base = Math.min(maxMs, baseMs * 2 ** Math.min(failures, 6));
  return base / 2 + Math.random() * base;
}

/** One pending retry at a time: `failed()` schedules `retry` unless one is pending or it stopped. */
export function createBackoff(retry: () => void, baseMs: number, maxMs: number) {
  let timer: ReturnType<typeof setTimeout> | undefined;
  let failures = 0;
  let stopped = false;
  return {
    failed(): void {
      failures++;
      if (stopped || timer) return;
      timer = setTimeout(() => {
        timer = undefined;
        retry();
      }, backoffDelay(failures, baseMs, maxMs));
      timer.unref?.();
    },
    /** It worked: no retry pending, counting from zero again; true when this ends a run of failures. */
    succeeded(): boolean {
      clearTimeout(timer);
      timer = undefined;
      const recovered = failures > 0;
      failures = 0;
      return recovered;
    },
    stop(): void {
      stopped = true;
      clearTimeout(timer);
    },
  };
}

export type Backoff = ReturnType<typeof createBackoff>;
