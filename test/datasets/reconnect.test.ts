/**
 * The server drops a replica's connections (PostgreSQL pg_terminate_backend, Redis CLIENT KILL):
 * the replica reconnects by itself, misses nothing, and its wake-up channel comes back.
 */
import pg from 'pg';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { openDataset, type Dataset, type DatasetStore } from '../../src/datasets/index.js';
import { postgresDatasetStore } from '../../src/postgres/index.js';
import { redisDatasetStore } from '../../src/redis/index.js';
import { eventually, recordingLogger } from '../../src/testing/dataset-conformance.js';
import { service } from '../support/services.js';

const postgres = await service('postgres');
const redis = await service('redis');
const tag = `${process.pid}_${Date.now().toString(36)}`;

const withParam = (url: string, key: string, value: string) => {
  const u = new URL(url);
  u.searchParams.set(key, value);
  return u.toString();
};

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function pair(writerStore: DatasetStore, readerStore: DatasetStore, name: string) {
  const logger = recordingLogger();
  const writer = await openDataset<number>(name, { store: writerStore, catchUpMs: 100 });
  const reader = await openDataset<number>(name, { store: readerStore, catchUpMs: 100, logger });
  cleanups.push(async () => {
    await reader.close();
    await writer.close();
    await readerStore.close();
    await writerStore.close();
  });
  const seen: number[] = [];
  reader.onChange((c) => seen.push(c.version));
  return { writer, reader, logger, seen };
}

async function writeAndConverge(writer: Dataset<number>, reader: Dataset<number>, seen: number[], from: number) {
  for (let i = 1; i <= 10; i++) await writer.set('n', i);
  await eventually('reader converges', () => reader.version === writer.version, 10_000);
  expect(seen.filter((v) => v > from)).toEqual(Array.from({ length: 10 }, (_, i) => from + i + 1));
  expect(reader.get('n')).toBe(10);
}

describe.skipIf(!!postgres.skipReason)(`postgres: the server terminates a replica's connections${postgres.skipReason ? ` (skipped: ${postgres.skipReason})` : ''}`, () => {
  it('the replica reconnects on its one connection and no change is missed or reordered', async () => {
    const schema = `sy_ds_kill_${tag}`;
    const app = `sy_ds_kill_${tag}`;
    const admin = new pg.Client({ connectionString: postgres.url });
    await admin.connect();
    cleanups.push(async () => {
      await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await admin.end();
    });
    const { writer, reader, logger, seen } = await pair(
      postgresDatasetStore({ connectionString: postgres.url, schema }),
      postgresDatasetStore({ connectionString: withParam(postgres.url, 'application_name', app), schema }),
      'kill-pg',
    );
    await writer.set('n', 0);
    await eventually('reader has version 1', () => reader.version === 1);
    // One connection per replica store: it LISTENs and runs the queries.
    const connections = async () =>
      Number((await admin.query(`SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = $1`, [app])).rows[0].n);
    expect(await connections()).toBe(1);
    const killed = await admin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1', [app]);
    expect(killed.rowCount).toBeGreaterThanOrEqual(1);
    await writeAndConverge(writer, reader, seen, 1);
    await eventually('the one connection is back', async () => (await connections()) === 1, 10_000);
    expect(logger.lines.filter((l) => l.includes('continuing from')).length).toBeLessThanOrEqual(1);
    expect(logger.lines.some((l) => l.includes('gap:'))).toBe(false);
  });
});

describe.skipIf(!!redis.skipReason)(`redis: the server kills a replica's connections${redis.skipReason ? ` (skipped: ${redis.skipReason})` : ''}`, () => {
  it('the replica reconnects, its subscription comes back, and no change is missed or reordered', async () => {
    const prefix = `sy-ds-kill-${tag}`;
    const name = `sy-ds-kill-${tag}`;
    const admin = new Redis(redis.url);
    cleanups.push(async () => {
      const found = await admin.keys(`${prefix}:*`);
      if (found.length > 0) await admin.del(...found);
      await admin.quit();
    });
    const { writer, reader, logger, seen } = await pair(
      redisDatasetStore({ url: redis.url, prefix }),
      redisDatasetStore({ url: withParam(redis.url, 'connectionName', name), prefix }),
      'kill-redis',
    );
    await writer.set('n', 0);
    await eventually('reader has version 1', () => reader.version === 1);
    const channel = `${prefix}:datasets:wake:kill-redis`;
    const subscribers = async () => Number(((await admin.pubsub('NUMSUB', channel)) as [string, number])[1]);
    expect(await subscribers()).toBe(2);
    const ids = (await admin.client('LIST') as string).split('\n').filter((l) => l.includes(` name=${name} `)).map((l) => /id=(\d+)/.exec(l)?.[1]);
    expect(ids.length).toBeGreaterThanOrEqual(2); // commands + subscriber
    for (const id of ids) await admin.client('KILL', 'ID', String(id));
    await writeAndConverge(writer, reader, seen, 1);
    await eventually('the subscription is re-established', async () => (await subscribers()) === 2, 10_000);
    expect(logger.lines.filter((l) => l.includes('continuing from')).length).toBeLessThanOrEqual(1);
    expect(logger.lines.some((l) => l.includes('gap:'))).toBe(false);
  });
});
