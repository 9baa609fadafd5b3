/** One counter per key: the next item of a list each time. Sends and publishes keep separate ones. */
export class RoundRobin {
  private readonly counters = new Map<string, number>();

  next<T>(key: string, items: readonly T[]): T | undefined {
    if (items.length === 0) return undefined;
    const n = this.counters.get(key) ?? 0;
    this.counters.set(key, (n + 1) % Number.MAX_SAFE_INTEGER);
    return items[n % items.length];
  }
}
