/**
 * A store that loses data: a private Redis restarted empty and restarted from an older RDB file,
 * a PostgreSQL schema dropped under running replicas, a SQLite file replaced by an older copy.
 * Every replica ends equal to the store, logs the resync, and a writer never reuses a version.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { Redis } from 'ioredis';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { openDataset, type Dataset, type DatasetStore } from '../../src/datasets/index.js';
import { postgresDatasetStore } from '../../src/postgres/index.js';
import { redisDatasetStore } from '../../src/redis/index.js';
import { sqliteDatasetStore } from '../../src/sqlite/dataset-store.js';
import { eventually, recordingLogger } from '../../src/testing/dataset-conformance.js';
import { service } from '../support/services.js';

const dir = mkdtempSync(path.join(tmpdir(), 'sy-ds-loss-'));
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const FAST = { leaseMs: 1000, stalenessMs: 2000, catchUpMs: 50 } as const;

async function openOn(store: DatasetStore, name: string) {
  const logger = recordingLogger();
  const ds = await openDataset<number>(name, { ...FAST, store, logger });
  cleanups.push(async () => {
    await ds.close();
    await store.close();
  });
  return { ds, logger };
}

/** After the loss: a write is read back by its writer, every replica equals the store, and nobody is stale. */
async function checkRecovered(writer: Dataset<number>, others: Dataset<number>[], seen: number) {
  const v = await writer.set('after', 1);
  expect(v).toBeGreaterThan(seen);
  expect(writer.get('after')).toBe(1);
  for (const r of others) await eventually(`${r.instance} applies ${v}`, () => r.version >= v && r.get('after') === 1, 10_000);
  const truth = Object.fromEntries(writer.entries());
  for (const r of others) expect(Object.fromEntries(r.entries())).toEqual(truth);
  expect((await writer.waitForVersion(v, { timeoutMs: 5000 })).converged).toBe(true);
  for (const r of [writer, ...others]) expect(r.isStale()).toBe(false);
}

async function freePort(): Promise<number> {
  for (let port = 16380; port <= 16399; port++) {
    const free = await new Promise<boolean>((resolve) => {
      const server = net.createServer().once('error', () => resolve(false)).listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
    });
    if (free) return port;
  }
  throw new Error('no free port in 16380-16399');
}

const haveRedisServer = await new Promise<boolean>((resolve) => spawn('redis-server', ['--version']).once('error', () => resolve(false)).once('exit', (c) => resolve(c === 0)));
const redisSkip = haveRedisServer ? undefined : 'redis-server is not installed';
if (redisSkip && process.env.CI) throw new Error(`CI is set and ${redisSkip}`);

describe.skipIf(!!redisSkip)(`a private redis that loses data${redisSkip ? ` (skipped: ${redisSkip})` : ''}`, () => {
  let port = 0;
  let server: ChildProcess | undefined;
  const redisDir = path.join(dir, 'redis');
  const start = async () => {
    server = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', redisDir, '--dbfilename', 'dump.rdb'], { stdio: 'ignore' });
    const probe = new Redis({ port, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    probe.on('error', () => undefined);
    await eventually('the private redis answers', async () => (await probe.connect().then(() => probe.ping()).catch(() => '')) === 'PONG', 10_000);
    probe.disconnect();
  };
  const stop = async () => {
    const s = server;
    server = undefined;
    if (!s || s.exitCode !== null) return;
    const exited = new Promise((resolve) => s.once('exit', resolve));
    s.kill('SIGKILL'); // no shutdown save: the data on disk is whatever the test left there
    await exited;
  };
  afterAll(stop);

  const setup = async (name: string) => {
    if (!port) {
      rmSync(redisDir, { recursive: true, force: true });
      (await import('node:fs')).mkdirSync(redisDir, { recursive: true });
      port = await freePort();
    }
    if (!server) await start();
    const url = `redis://127.0.0.1:${port}`;
    const a = await openOn(redisDatasetStore({ url }), name);
    const b = await openOn(redisDatasetStore({ url }), name);
    return { writer: a.ds, reader: b.ds, logs: [a.logger, b.logger] };
  };

  it('restarted empty (no persistence): replicas resync and the writer reads its own writes', async () => {
    const { writer, reader, logs } = await setup('loss-empty');
    for (let i = 1; i <= 10; i++) await writer.set('n', i);
    await eventually('reader at 10', () => reader.version === 10);
    rmSync(path.join(redisDir, 'dump.rdb'), { force: true });
    await stop();
    await start();
    await checkRecovered(writer, [reader], 10);
    expect(writer.get('n')).toBeUndefined(); // the store lost it; every replica says so
    for (const l of logs) expect(l.lines.filter((x) => x.includes('lost data') && x.includes('gap: resync from snapshot')).length).toBeGreaterThanOrEqual(1);
  });

  it('restarted from an older RDB file: replicas resync, no version is reused', async () => {
    const { writer, reader, logs } = await setup('loss-rollback');
    for (let i = 1; i <= 5; i++) await writer.set('n', i);
    const admin = new Redis({ port });
    await admin.save();
    copyFileSync(path.join(redisDir, 'dump.rdb'), path.join(redisDir, 'old.rdb'));
    for (let i = 6; i <= 10; i++) await writer.set('n', i);
    await eventually('reader at 10', () => reader.version === 10);
    await admin.quit();
    await stop();
    copyFileSync(path.join(redisDir, 'old.rdb'), path.join(redisDir, 'dump.rdb'));
    await start();
    await checkRecovered(writer, [reader], 10);
    expect(writer.get('n')).toBe(5);
    for (const l of logs) expect(l.lines.filter((x) => x.includes('lost data') && x.includes('gap: resync from snapshot')).length).toBeGreaterThanOrEqual(1);
  });
});

const postgres = await service('postgres');

describe.skipIf(!!postgres.skipReason)(`postgres: the dataset schema is dropped under running replicas${postgres.skipReason ? ` (skipped: ${postgres.skipReason})` : ''}`, () => {
  it('the stores create it again, replicas resync, the writer reads its own writes', async () => {
    const schema = `sy_ds_loss_${process.pid}_${Date.now().toString(36)}`;
    const admin = new pg.Client({ connectionString: postgres.url });
    await admin.connect();
    cleanups.push(async () => {
      await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await admin.end();
    });
    const a = await openOn(postgresDatasetStore({ connectionString: postgres.url, schema }), 'loss-pg');
    const b = await openOn(postgresDatasetStore({ connectionString: postgres.url, schema }), 'loss-pg');
    for (let i = 1; i <= 10; i++) await a.ds.set('n', i);
    await eventually('reader at 10', () => b.ds.version === 10);
    await admin.query(`DROP SCHEMA "${schema}" CASCADE`);
    await checkRecovered(a.ds, [b.ds], 10);
    expect(a.ds.get('n')).toBeUndefined();
  });
});

describe('sqlite: the store file is replaced by an older copy', () => {
  it('replicas restarted from their saved state resync, and the writer never reuses a version', async () => {
    const file = path.join(dir, 'loss.db');
    const old = path.join(dir, 'loss-old.db');
    const first = await openOn(sqliteDatasetStore({ path: file }), 'loss-sqlite');
    for (let i = 1; i <= 5; i++) await first.ds.set('n', i);
    const copy = sqliteDatasetStore({ path: file });
    await copy.close();
    const Database = (await import('better-sqlite3')).default;
    const db = new Database(file);
    db.exec(`VACUUM INTO '${old}'`);
    db.close();
    for (let i = 6; i <= 10; i++) await first.ds.set('n', i);
    const saved = first.ds.exportState();
    await cleanups.pop()!();
    for (const f of [file, `${file}-wal`, `${file}-shm`]) rmSync(f, { force: true });
    copyFileSync(old, file);
    const logger = recordingLogger();
    const store = sqliteDatasetStore({ path: file });
    const writer = await openDataset<number>('loss-sqlite', { ...FAST, store, logger, resumeFrom: saved });
    cleanups.push(async () => {
      await writer.close();
      await store.close();
    });
    expect(logger.lines.filter((l) => /lost data \(its head 5 is below version 10 .*\): gap: resync from snapshot 10 /.test(l))).toHaveLength(1);
    expect(writer.get('n')).toBe(5);
    const other = await openOn(sqliteDatasetStore({ path: file }), 'loss-sqlite');
    await checkRecovered(writer, [other.ds], 10);
  });
});
