/**
 * Group commit against another connection holding the write lock (as another process would):
 * the event loop keeps running while a group waits for the lock, operations queued meanwhile
 * join the group, and a group that cannot get the lock within busyTimeoutMs fails with the
 * busy error and writes nothing. Groups of bookkeeping only (claims, renewals) skip the fsync.
 */
import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { GroupCommitter, openDatabase } from '../../src/sqlite/database.js';

let dir: string;
let file: string;
const open: Database.Database[] = [];

beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'sy-group-'));
  file = path.join(dir, 'g.db');
  const setup = openDatabase({ path: file });
  setup.exec('CREATE TABLE t (n INTEGER)');
  setup.close();
});

afterEach(() => {
  for (const db of open.splice(0)) if (db.open) db.close();
  rmSync(dir, { recursive: true, force: true });
});

function connection(synchronous: 'full' | 'normal' = 'full'): Database.Database {
  const db = openDatabase({ path: file, synchronous });
  open.push(db);
  return db;
}

const count = (db: Database.Database) => db.prepare('SELECT COUNT(*) FROM t').pluck().get() as number;

describe('SQLite group commit', () => {
  it('waits for a write lock held elsewhere without blocking the event loop, then commits the whole group', async () => {
    const other = connection();
    const db = connection();
    const committer = new GroupCommitter(db, 5000);
    const insert = db.prepare('INSERT INTO t (n) VALUES (?)');
    other.exec('BEGIN IMMEDIATE');

    const first = committer.run(() => insert.run(1));
    // A timer fires while the group waits: the loop is not stuck in SQLite's busy handler.
    await new Promise((resolve) => setTimeout(resolve, 20));
    const second = committer.run(() => insert.run(2));
    let settled = false;
    void Promise.all([first, second]).then(() => (settled = true));
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(settled).toBe(false);

    other.exec('COMMIT');
    await Promise.all([first, second]);
    expect(count(other)).toBe(2);
    committer.close();
  });

  it('fails the group with SQLITE_BUSY after busyTimeoutMs and writes nothing', async () => {
    const other = connection();
    const db = connection();
    const committer = new GroupCommitter(db, 50);
    other.exec('BEGIN IMMEDIATE');
    const startedAt = Date.now();
    await expect(committer.run(() => db.prepare('INSERT INTO t (n) VALUES (1)').run())).rejects.toMatchObject({ code: 'SQLITE_BUSY' });
    expect(Date.now() - startedAt).toBeGreaterThanOrEqual(50);
    other.exec('ROLLBACK');
    expect(count(other)).toBe(0);
    // The connection is usable again: the next group commits.
    await committer.run(() => db.prepare('INSERT INTO t (n) VALUES (2)').run());
    expect(count(other)).toBe(1);
    committer.close();
  });

  it('commits bookkeeping-only groups without fsync (NORMAL) and any group with an acknowledgement with FULL', async () => {
    const db = connection();
    const committer = new GroupCommitter(db, 5000, 'full');
    const level = () => db.pragma('synchronous', { simple: true }) as number; // 1 NORMAL, 2 FULL
    expect(await committer.run(level, 'bookkeeping')).toBe(1);
    expect(await committer.run(level)).toBe(2);
    const [a, b] = await Promise.all([committer.run(level, 'bookkeeping'), committer.run(level, 'durable')]);
    expect([a, b]).toEqual([2, 2]);
    // A connection opened at NORMAL stays there.
    const normal = connection('normal');
    const relaxed = new GroupCommitter(normal, 5000, 'normal');
    expect(await relaxed.run(() => normal.pragma('synchronous', { simple: true }))).toBe(1);
    committer.close();
    relaxed.close();
  });
});
