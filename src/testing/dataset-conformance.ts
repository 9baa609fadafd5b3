/**
 * The dataset store conformance suite. Every DatasetStore adapter's test file is one call:
 *
 *   datasetStoreConformance('sqlite', async () => ({ makeStore: () => sqliteDatasetStore({ path }), cleanup }));
 *
 * Replicas here run in one process, each on its own store instance (its own connection), and a
 * switchable wrapper stands in for a lost connection. Multi-process tests live beside each
 * adapter's tests. Dataset names are unique per test, so runs can share a server.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { isSwitchyardError, ErrorCodes } from '../core/errors.js';
import { lineLogger, type Logger } from '../core/logger.js';
import { openDataset, openReplicas, type Dataset, type DatasetChange, type DatasetOptions, type DatasetStore } from '../datasets/index.js';

export interface DatasetStoreFixture {
  /** A new store instance with its own connection(s), as another process would have. */
  makeStore(): DatasetStore | Promise<DatasetStore>;
  /** Drops whatever the fixture created (files, schemas, keys). */
  cleanup(): Promise<void>;
}

/** A store whose connection can be cut: while offline every call fails and wake-ups are lost. */
export function switchableStore(inner: DatasetStore): { store: DatasetStore; setOnline(online: boolean): void } {
  let online = true;
  const gate = <T>(f: () => Promise<T>): Promise<T> =>
    online ? f() : Promise.reject(new Error(`${inner.backend} connection is down (test switch)`));
  const store: DatasetStore = {
    backend: inner.backend,
    append: (d, r, o) => gate(() => inner.append(d, r, o)),
    advance: (d, f) => gate(() => inner.advance(d, f)),
    readSince: (d, a, l) => gate(() => inner.readSince(d, a, l)),
    snapshot: (d) => gate(() => inner.snapshot(d)),
    watch: (d, wake) => inner.watch(d, (hint) => online && wake(hint)),
    heartbeat: (d, r) => gate(() => inner.heartbeat(d, r)),
    leave: (d, r) => gate(() => inner.leave(d, r)),
    membership: (d) => gate(() => inner.membership(d)),
    trim: (d, v) => gate(() => inner.trim(d, v)),
    close: () => inner.close(),
  };
  return { store, setOnline: (value) => void (online = value) };
}

/** Collects log lines so tests can assert the resume outcome. */
export function recordingLogger(): Logger & { lines: string[] } {
  const lines: string[] = [];
  return { lines, ...lineLogger((_level, line) => void lines.push(line), { debug: true }) };
}

/** Polls a condition until it holds; fails with `what` after the timeout. */
export async function eventually(what: string, condition: () => boolean | Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const FAST = { leaseMs: 600, stalenessMs: 400, catchUpMs: 50 } as const;

export function datasetStoreConformance(name: string, makeFixture: () => Promise<DatasetStoreFixture>): void {
  describe(`dataset store conformance: ${name}`, () => {
    let fixture: DatasetStoreFixture;
    const opened: { close(): Promise<void> }[] = [];
    let counter = 0;
    const uniqueName = () => `conf-${Date.now().toString(36)}-${process.pid}-${++counter}`;
    const newStore = async () => {
      const store = await fixture.makeStore();
      opened.push(store);
      return store;
    };
    const open = async <V>(dataset: string, options: Partial<DatasetOptions<V>> = {}): Promise<Dataset<V>> => {
      const store = options.store ?? (await newStore());
      const ds = await openDataset<V>(dataset, { ...FAST, ...options, store });
      opened.unshift(ds); // datasets close before their stores
      return ds;
    };

    beforeAll(async () => {
      fixture = await makeFixture();
    });
    afterEach(async () => {
      const all = opened.splice(0);
      for (const item of all) await item.close();
    });
    afterAll(async () => {
      await fixture?.cleanup();
    });

    it('assigns increasing gapless versions and serves its own writes from memory', async () => {
      const ds = await open<number>(uniqueName());
      expect(ds.version).toBe(0);
      const v1 = await ds.set('a', 1);
      const v2 = await ds.set('b', 2);
      const v3 = await ds.delete('a');
      expect([v1, v2, v3]).toEqual([1, 2, 3]);
      expect(ds.version).toBe(3);
      expect(ds.get('a')).toBeUndefined();
      expect(ds.get('b')).toBe(2);
      expect(ds.getEntry('b')).toEqual({ value: 2, version: 2 });
      expect([...ds.entries()]).toEqual([['b', 2]]);
    });

    it('another replica converges and its onChange sees every change once, in version order', async () => {
      const dataset = uniqueName();
      const writer = await open<number>(dataset);
      await writer.set('seed', 0);
      const reader = await open<number>(dataset);
      expect(reader.get('seed')).toBe(0);
      const seen: DatasetChange<number>[] = [];
      reader.onChange((c) => seen.push(c));
      for (let i = 1; i <= 20; i++) await writer.set('n', i);
      await eventually('reader applies version 21', () => reader.version === 21);
      expect(seen.map((c) => c.version)).toEqual(Array.from({ length: 20 }, (_, i) => i + 2));
      expect(seen.map((c) => c.changes[0]?.value)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
      const result = await writer.waitForVersion(21, { timeoutMs: 2000 });
      expect(result.converged).toBe(true);
    });

    it('a batch is one version, all keys or none', async () => {
      const dataset = uniqueName();
      const ds = await open<string>(dataset);
      const v = await ds.batch([{ key: 'x', value: 'X' }, { key: 'y', value: 'Y' }]);
      expect(v).toBe(1);
      const err = await ds.batch([{ key: 'z', value: 'Z' }, { key: 'x', value: 'X2', ifVersion: 99 }]).catch((e: unknown) => e);
      expect(isSwitchyardError(err, ErrorCodes.DATASET_CONFLICT)).toBe(true);
      const other = await open<string>(dataset);
      expect(other.version).toBe(1);
      expect([...other.entries()].sort()).toEqual([['x', 'X'], ['y', 'Y']]);
    });

    it('compare-and-set rejects a stale ifVersion with SY_ERR_DATASET_CONFLICT and a clear message', async () => {
      const ds = await open<number>(uniqueName());
      const v1 = await ds.set('k', 1, { ifVersion: 0 });
      await ds.set('k', 2, { ifVersion: v1 });
      const err = await ds.set('k', 3, { ifVersion: v1 }).catch((e: unknown) => e);
      expect(isSwitchyardError(err, ErrorCodes.DATASET_CONFLICT)).toBe(true);
      expect(String((err as Error).message)).toMatch(/key "k" is at version 2, not 1/);
      const err0 = await ds.set('k', 4, { ifVersion: 0 }).catch((e: unknown) => e);
      expect(isSwitchyardError(err0, ErrorCodes.DATASET_CONFLICT)).toBe(true);
      expect(ds.get('k')).toBe(2);
    });

    it('concurrent compare-and-set writers: exactly one wins each round', async () => {
      const dataset = uniqueName();
      const writers = await Promise.all([0, 1, 2].map(() => open<string>(dataset)));
      for (let round = 1; round <= 8; round++) {
        await eventually('all writers current', () => writers.every((w) => w.version === writers[0]!.version));
        const base = writers[0]!.getEntry('leader')?.version ?? 0;
        const results = await Promise.allSettled(writers.map((w, i) => w.set('leader', `w${i}-r${round}`, { ifVersion: base })));
        const wins = results.filter((r) => r.status === 'fulfilled');
        const losses = results.filter((r) => r.status === 'rejected');
        expect(wins).toHaveLength(1);
        for (const l of losses) expect(isSwitchyardError((l as PromiseRejectedResult).reason, ErrorCodes.DATASET_CONFLICT)).toBe(true);
        await eventually('all writers see the winner', () => writers.every((w) => w.version === (wins[0] as PromiseFulfilledResult<number>).value));
      }
    });

    it('a replica that lost its connection resumes from its version: "continuing from N"', async () => {
      const dataset = uniqueName();
      const writer = await open<number>(dataset);
      await writer.set('n', 0);
      const link = switchableStore(await newStore());
      const logger = recordingLogger();
      const reader = await open<number>(dataset, { store: link.store, logger });
      const seen: number[] = [];
      reader.onChange((c) => seen.push(c.version));
      link.setOnline(false);
      await eventually('reader notices the lost connection', () => logger.lines.some((l) => l.includes('lost contact')));
      for (let i = 1; i <= 10; i++) await writer.set('n', i);
      expect(reader.get('n')).toBe(0);
      link.setOnline(true);
      await eventually('reader catches up', () => reader.version === 11);
      expect(seen).toEqual(Array.from({ length: 10 }, (_, i) => i + 2));
      expect(logger.lines.filter((l) => l.includes('continuing from 1'))).toHaveLength(1);
      expect(logger.lines.some((l) => l.includes('gap:'))).toBe(false);
    });

    it('a replica behind a trimmed log resyncs from a snapshot: "gap: resync from snapshot S"', async () => {
      const dataset = uniqueName();
      const writer = await open<number>(dataset);
      await writer.batch([{ key: 'keep', value: 1 }, { key: 'gone', value: 1 }]);
      const link = switchableStore(await newStore());
      const logger = recordingLogger();
      const reader = await open<number>(dataset, { store: link.store, logger });
      const seen: DatasetChange<number>[] = [];
      reader.onChange((c) => seen.push(c));
      link.setOnline(false);
      await eventually('reader notices the lost connection', () => logger.lines.some((l) => l.includes('lost contact')));
      for (let i = 2; i <= 6; i++) await writer.set('keep', i);
      await writer.delete('gone');
      await writer.set('new', 7);
      const head = writer.version;
      expect(await writer.trimLog({ keepLast: 1 })).toBe(head - 1);
      link.setOnline(true);
      await eventually('reader resyncs', () => reader.version === head);
      expect(Object.fromEntries(reader.entries())).toEqual({ keep: 6, new: 7 });
      expect(logger.lines.filter((l) => l.includes(`gap: resync from snapshot ${head}`))).toHaveLength(1);
      expect(logger.lines.some((l) => l.includes('continuing from'))).toBe(false);
      expect(seen).toHaveLength(1);
      expect(seen[0]!.kind).toBe('resync');
      expect(seen[0]!.changes.map((c) => [c.key, c.deleted]).sort()).toEqual([['gone', true], ['keep', false], ['new', false]]);
    });

    it('a restarted replica resumes from saved state through the log, or from a snapshot when the log was trimmed', async () => {
      const dataset = uniqueName();
      const writer = await open<number>(dataset);
      await writer.set('n', 1);
      const first = await open<number>(dataset);
      const saved = first.exportState();
      await first.close();
      await writer.set('n', 2);
      const log1 = recordingLogger();
      const resumed = await open<number>(dataset, { resumeFrom: saved, logger: log1 });
      expect(resumed.get('n')).toBe(2);
      expect(log1.lines.filter((l) => l.includes(`restarted: continuing from ${saved.version}`))).toHaveLength(1);
      const saved2 = resumed.exportState();
      await resumed.close();
      await writer.set('n', 3);
      await writer.set('m', 4);
      await writer.trimLog({ keepLast: 0 });
      const log2 = recordingLogger();
      const resynced = await open<number>(dataset, { resumeFrom: saved2, logger: log2 });
      expect(Object.fromEntries(resynced.entries())).toEqual({ n: 3, m: 4 });
      expect(log2.lines.filter((l) => l.includes(`gap: resync from snapshot ${writer.version}`))).toHaveLength(1);
      expect(log2.lines.some((l) => l.includes('continuing from'))).toBe(false);
    });

    it('the store never hands out a version at or below `above`, and advance starts a new generation when its head is below the floor', async () => {
      const dataset = uniqueName();
      const store = await newStore();
      const first = await store.append(dataset, { kind: 'write', at: 1, ops: [{ key: 'a', value: 1 }] });
      expect(first.version).toBe(1);
      expect(first.generation).not.toBe('');
      expect((await store.snapshot(dataset)).generation).toBe(first.generation);
      const same = await store.append(dataset, { kind: 'write', at: 2, ops: [{ key: 'b', value: 2 }] }, { above: 1 });
      expect(same).toEqual({ version: 2, generation: first.generation });
      // A writer that saw version 7: the store lost 3..7, so it moves past them under a new generation.
      const past = await store.append(dataset, { kind: 'write', at: 3, ops: [{ key: 'c', value: 3 }] }, { above: 7 });
      expect(past.version).toBe(8);
      expect(past.generation).not.toBe(first.generation);
      const snap = await store.snapshot(dataset);
      expect(snap.version).toBe(8);
      expect(snap.generation).toBe(past.generation);
      expect(snap.entries.map((e) => [e.key, e.value, e.version]).sort()).toEqual([['a', 1, 1], ['b', 2, 2], ['c', 3, 8]]);
      const read = await store.readSince(dataset, 2, 10);
      expect(read).toMatchObject({ kind: 'gap', head: 8, generation: past.generation });
      expect(await store.readSince(dataset, 7, 10)).toMatchObject({ kind: 'records', head: 8, generation: past.generation });
      expect(await store.advance(dataset, 5)).toEqual({ head: 8, generation: past.generation });
      const advanced = await store.advance(dataset, 20);
      expect(advanced.head).toBe(20);
      expect(advanced.generation).not.toBe(past.generation);
      expect((await store.membership(dataset)).generation).toBe(advanced.generation);
      expect((await store.append(dataset, { kind: 'write', at: 4, ops: [{ key: 'd', value: 4 }] })).version).toBe(21);
    });

    it('a replica holding versions the store no longer has (it lost data) resyncs loudly, and no version it saw is reused', async () => {
      const dataset = uniqueName();
      const writerLog = recordingLogger();
      const writer = await open<number>(dataset, { logger: writerLog });
      for (let i = 1; i <= 5; i++) await writer.set('k', i);
      // State of a replica that applied 6..9, which the store lost (restored from an older backup).
      const { generation } = writer.exportState();
      const ahead = { version: 9, generation, entries: [{ key: 'k', value: 9, version: 9 }, { key: 'lost', value: 8, version: 8 }] };
      const logger = recordingLogger();
      const reader = await open<number>(dataset, { resumeFrom: ahead, logger });
      expect(logger.lines.filter((l) => /lost data \(its head 5 is below version 9 .*\): gap: resync from snapshot 9 /.test(l))).toHaveLength(1);
      expect(logger.lines.some((l) => l.includes('continuing from'))).toBe(false);
      expect(reader.version).toBe(9);
      expect(Object.fromEntries(reader.entries())).toEqual({ k: 5 });
      // The writer sees the store's new generation and resyncs too; its next write is above 9.
      await eventually('the writer resyncs to the new generation', () => writer.version === 9);
      expect(writerLog.lines.filter((l) => /lost data \(its generation changed .*\): gap: resync from snapshot 9 /.test(l))).toHaveLength(1);
      expect(await writer.set('k', 10)).toBe(10);
      expect(writer.get('k')).toBe(10);
      await eventually('the reader applies 10', () => reader.version === 10 && reader.get('k') === 10);
      expect((await writer.waitForVersion(10, { timeoutMs: 2000 })).converged).toBe(true);
      expect((await reader.status()).stale).toBe(false);
    });

    it('a replica from another store generation resyncs from a snapshot instead of applying the new history on top', async () => {
      const dataset = uniqueName();
      const writer = await open<string>(dataset);
      for (const v of ['a', 'b', 'c']) await writer.set('k', v);
      const other = { version: 2, generation: 'a-generation-this-store-never-had', entries: [{ key: 'ghost', value: 'boo', version: 2 }] };
      const logger = recordingLogger();
      const seen: DatasetChange<string>[] = [];
      const reader = await open<string>(dataset, { resumeFrom: other, logger });
      reader.onChange((c) => seen.push(c));
      expect(logger.lines.filter((l) => /lost data \(its generation changed .*\): gap: resync from snapshot 3 /.test(l))).toHaveLength(1);
      expect(Object.fromEntries(reader.entries())).toEqual({ k: 'c' });
      expect((await reader.status()).generation).toBe(writer.exportState().generation);
      await writer.set('k', 'd');
      await eventually('reader follows the log again', () => reader.get('k') === 'd');
      expect(seen.map((c) => [c.kind, c.version])).toEqual([['write', 4]]);
    });

    it('a listener that throws holds the replica below that version, shows it failing, blocks a stage, and is retried until it succeeds', async () => {
      const dataset = uniqueName();
      const writer = await open<number>(dataset);
      await writer.set('k', 1);
      const logger = recordingLogger();
      const reader = await open<number>(dataset, { logger });
      let broken = true;
      const seen: number[] = [];
      const other: number[] = [];
      reader.onChange((c) => {
        if (broken && c.version === 2) throw new Error('listener bug');
        seen.push(c.version);
      });
      reader.onChange((c) => other.push(c.version));
      await writer.set('k', 2);
      await writer.set('k', 3);
      const failingIn = async () => (await writer.status()).replicas.find((r) => r.instance === reader.instance)?.failing;
      await eventually('the reader is reported failing at version 2', async () => (await failingIn())?.version === 2);
      expect(reader.version).toBe(1);
      expect((await reader.status()).failing).toMatchObject({ version: 2, error: 'listener bug' });
      const lagOf = () => [...openReplicas()].find((r) => r.instance === reader.instance)?.lag();
      expect(lagOf()?.versions, 'the held reader knows it is behind').toBeGreaterThanOrEqual(1);
      const wait = await writer.waitForVersion(2, { timeoutMs: 100 });
      expect(wait.converged).toBe(false);
      if (!wait.converged) expect(wait.lagging.map((r) => [r.instance, r.applied, r.failing?.error])).toEqual([[reader.instance, 1, 'listener bug']]);
      const outcome = await writer.stage([{ key: 'k', value: 4 }], { timeoutMs: 3000 });
      expect(outcome.accepted).toBe(false);
      if (!outcome.accepted) {
        expect(outcome.rejected.map((r) => r.instance)).toEqual([reader.instance]);
        expect(outcome.rejected[0]!.reason).toMatch(/listener is failing at version 2: listener bug/);
      }
      expect(reader.version).toBe(1);
      broken = false;
      await eventually('the reader catches up once the listener succeeds', () => reader.version === writer.version, 10_000);
      expect(lagOf()).toEqual({ versions: 0, ms: 0 });
      expect(seen).toEqual([2, 3]);
      expect(other).toEqual([2, 3]); // the listener that succeeded is not called again
      expect(logger.lines.filter((l) => l.includes('an onChange listener threw at version 2: listener bug; held at version 1'))).toHaveLength(1);
      expect(logger.lines.some((l) => l.includes('succeeded at version 2'))).toBe(true);
      expect((await writer.waitForVersion(writer.version, { timeoutMs: 2000 })).converged).toBe(true);
      await eventually('the failure is cleared from membership', async () => (await failingIn()) === undefined);
      expect((await reader.status()).failing).toBeUndefined();
    });

    it('waitForVersion reports who lags; a replica that stops heartbeating departs after its lease', async () => {
      const dataset = uniqueName();
      const writer = await open<number>(dataset);
      const link = switchableStore(await newStore());
      const reader = await open<number>(dataset, { store: link.store });
      link.setOnline(false);
      const v = await writer.set('k', 1);
      const early = await writer.waitForVersion(v, { timeoutMs: 100 });
      expect(early.converged).toBe(false);
      if (!early.converged) expect(early.lagging.map((r) => [r.instance, r.applied, r.lag])).toEqual([[reader.instance, 0, 1]]);
      const later = await writer.waitForVersion(v, { timeoutMs: 3000 });
      expect(later.converged).toBe(true);
      expect(later.departed.map((r) => r.instance)).toEqual([reader.instance]);
      const status = await writer.status();
      expect(status.head).toBe(v);
      expect(status.replicas.find((r) => r.instance === reader.instance)?.live).toBe(false);
    });

    it('a replica that cannot confirm it is current reports stale; with onStale "refuse" reads throw SY_ERR_DATASET_STALE', async () => {
      const dataset = uniqueName();
      const link = switchableStore(await newStore());
      const ds = await open<number>(dataset, { store: link.store, onStale: 'refuse' });
      await ds.set('k', 1);
      expect(ds.get('k')).toBe(1);
      link.setOnline(false);
      await eventually('replica turns stale', () => ds.isStale());
      let error: unknown;
      try {
        ds.get('k');
      } catch (e) {
        error = e;
      }
      expect(isSwitchyardError(error, ErrorCodes.DATASET_STALE)).toBe(true);
      expect(String((error as Error).message)).toMatch(/is stale: version 1 was last confirmed current/);
      link.setOnline(true);
      await eventually('replica is current again', () => !ds.isStale());
      expect(ds.get('k')).toBe(1);
    });

    it('stage then activate: every replica votes, then all switch at the activation version', async () => {
      const dataset = uniqueName();
      const a = await open<number>(dataset);
      await a.set('price', 10);
      const b = await open<number>(dataset);
      const c = await open<number>(dataset);
      const outcome = await a.stage([{ key: 'price', value: 12 }], { timeoutMs: 3000 });
      expect(outcome.accepted).toBe(true);
      if (!outcome.accepted) return;
      expect([...outcome.voters].sort()).toEqual([a.instance, b.instance, c.instance].sort());
      expect([a, b, c].map((d) => d.get('price'))).toEqual([10, 10, 10]);
      const switchedAt: number[] = [];
      for (const d of [b, c]) d.onChange((ch) => ch.kind === 'activate' && switchedAt.push(ch.version));
      const v = await a.activate(outcome.stage);
      await eventually('all switched', () => [b, c].every((d) => d.get('price') === 12));
      expect(switchedAt).toEqual([v, v]);
      expect(a.getEntry('price')?.version).toBe(v);
      await expect(a.activate(outcome.stage)).rejects.toMatchObject({ code: ErrorCodes.DATASET_STAGE });
    });

    it('stage rejected by one replica: aborted with its reason, nobody switches', async () => {
      const dataset = uniqueName();
      const a = await open<number>(dataset);
      await a.set('price', 10);
      const b = await open<number>(dataset, { validate: (changes) => (changes.some((ch) => (ch.value ?? 0) > 100) ? 'price above 100' : undefined) });
      const outcome = await a.stage([{ key: 'price', value: 1000 }], { timeoutMs: 3000 });
      expect(outcome.accepted).toBe(false);
      if (outcome.accepted) return;
      expect(outcome.rejected).toEqual([{ instance: b.instance, reason: 'price above 100' }]);
      await expect(a.activate(outcome.stage)).rejects.toMatchObject({ code: ErrorCodes.DATASET_STAGE });
      await eventually('b applied the abort', () => b.version >= outcome.abortVersion);
      expect([a.get('price'), b.get('price')]).toEqual([10, 10]);
    });

    it('opening while the store is unreachable fails with SY_ERR_TRANSPORT naming the store; bad timings fail with SY_ERR_CONFIG', async () => {
      const link = switchableStore(await newStore());
      link.setOnline(false);
      const err = await openDataset(uniqueName(), { ...FAST, store: link.store }).catch((e: unknown) => e);
      expect(isSwitchyardError(err, ErrorCodes.TRANSPORT)).toBe(true);
      expect(String((err as Error).message)).toContain(`could not open on the ${link.store.backend} store`);
      const bad = await openDataset(uniqueName(), { store: await newStore(), stalenessMs: 100, catchUpMs: 100 }).catch((e: unknown) => e);
      expect(isSwitchyardError(bad, ErrorCodes.CONFIG)).toBe(true);
    });

    it('close is idempotent, leaves membership, and later calls say the dataset is closed', async () => {
      const dataset = uniqueName();
      const a = await open<number>(dataset);
      const b = await open<number>(dataset);
      expect((await a.status()).replicas.map((r) => r.instance).sort()).toEqual([a.instance, b.instance].sort());
      await Promise.all([b.close(), b.close()]);
      expect((await a.status()).replicas.map((r) => r.instance)).toEqual([a.instance]);
      await expect(b.set('k', 1)).rejects.toMatchObject({ code: ErrorCodes.DATASET_CLOSED });
    });
  });
}
