/**
 * Schema migration 2 of the SQLite transport (AUTOINCREMENT seq, for fencing): a database made
 * by version 1 is rebuilt in place with its messages and leases, by exactly one of several
 * processes opening it at once, and seqs are never handed out again afterwards.
 */
import Database from 'better-sqlite3';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { sqliteTransport } from '../../src/sqlite/index.js';
import { nodeScript } from '../../src/testing/node-script.js';

/** The schema as migration 1 left it (copied, so this test keeps describing old databases). */
const V1 = `
  CREATE TABLE sy_schema (component TEXT NOT NULL, version INTEGER NOT NULL, breaking INTEGER NOT NULL, applied_at INTEGER NOT NULL, PRIMARY KEY (component, version));
  INSERT INTO sy_schema VALUES ('transport', 1, 0, 0);
  CREATE TABLE sy_queues (name TEXT PRIMARY KEY, created_at INTEGER NOT NULL);
  CREATE TABLE sy_messages (seq INTEGER PRIMARY KEY, queue TEXT NOT NULL, id TEXT NOT NULL, headers TEXT NOT NULL, body TEXT NOT NULL,
    visible_at INTEGER NOT NULL, lease_token INTEGER NOT NULL DEFAULT 0, delivery_count INTEGER NOT NULL DEFAULT 0);
  CREATE INDEX sy_messages_ready ON sy_messages (queue, visible_at, seq);
  INSERT INTO sy_queues VALUES ('q', 0);`;

const signal = new AbortController().signal;
let dir: string;
let file: string;

beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'sy-migrate-'));
  file = path.join(dir, 'bus.db');
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** A version-1 database holding `count` messages; the first is leased (token 3) until far ahead. */
function oldDatabase(count: number): void {
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.exec(V1);
  const insert = db.prepare('INSERT INTO sy_messages (seq, queue, id, headers, body, visible_at, lease_token, delivery_count) VALUES (?, ?, ?, ?, ?, ?, ?, ?)');
  for (let n = 1; n <= count; n++) {
    insert.run(n * 2, 'q', `m${n}`, JSON.stringify({ 'sy1-message-id': `m${n}` }), JSON.stringify({ n }), n === 1 ? Date.now() + 3_600_000 : 0, n === 1 ? 3 : 0, n === 1 ? 3 : 0);
  }
  db.close();
}

function inspect() {
  const db = new Database(file, { readonly: true });
  try {
    return {
      sql: db.prepare("SELECT sql FROM sqlite_master WHERE name = 'sy_messages'").pluck().get() as string,
      indexes: db.prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'sy_messages'").pluck().all(),
      versions: db.prepare("SELECT version FROM sy_schema WHERE component = 'transport' ORDER BY version").pluck().all(),
      rows: db.prepare('SELECT seq, id, lease_token, delivery_count FROM sy_messages ORDER BY seq').all() as Array<{ seq: number; id: string; lease_token: number; delivery_count: number }>,
    };
  } finally {
    db.close();
  }
}

describe('sqlite transport migration 2 (AUTOINCREMENT)', () => {
  it('rebuilds a version-1 table in place, keeping messages, leases and counts, and never reuses a seq after', async () => {
    oldDatabase(3);
    const before = inspect();
    const t = sqliteTransport({ path: file });
    try {
      await t.open();
      const after = inspect();
      expect(after.sql).toMatch(/AUTOINCREMENT/);
      expect(after.indexes).toEqual(['sy_messages_ready']);
      expect(after.versions).toEqual([1, 2]);
      expect(after.rows).toEqual(before.rows);
      expect((await t.admin!.peek('q', { offset: 0, limit: 10 })).map((m) => m.id)).toEqual(['m1', 'm2', 'm3']);
      // m1 is still leased; m2 and m3 are delivered, completed (m3 is the newest row) and the next seqs are new.
      const receipts = await t.receive('q', { max: 10, waitMs: 0, signal });
      expect(receipts.map((r) => [r.message.id, r.deliveryCount])).toEqual([['m2', 1], ['m3', 1]]);
      for (const r of receipts) await r.complete();
      await t.dispatch([{ destination: 'q', message: { id: 'new', headers: { 'sy1-message-id': 'new' }, body: '{}' } }]);
      const seqs = inspect().rows.map((r) => r.seq);
      expect(seqs[0]).toBe(2);
      expect(seqs[1]).toBeGreaterThan(6 + 2 ** 40);
    } finally {
      await t.close();
    }
  });

  it('a new database gets the AUTOINCREMENT table too', async () => {
    const t = sqliteTransport({ path: file });
    await t.open();
    await t.close();
    expect(inspect().sql).toMatch(/AUTOINCREMENT/);
  });

  it('is applied once when several processes open the old database at the same moment', async () => {
    oldDatabase(200);
    const before = inspect().rows;
    const go = path.join(dir, 'go');
    const opener = nodeScript('./fixtures/open-sqlite.ts', import.meta.url);
    const children = Array.from({ length: 3 }, () => {
      const child = spawn(process.execPath, [...opener.execArgv, opener.script, file, go], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr.on('data', (d: Buffer) => (out += d.toString()));
      return new Promise<string>((resolve) => child.on('exit', (code) => resolve(`${code}: ${out.trim()}`)));
    });
    writeFileSync(go, '');
    expect(await Promise.all(children)).toEqual(['0: opened', '0: opened', '0: opened']);
    const after = inspect();
    expect(after.versions).toEqual([1, 2]);
    expect(after.sql).toMatch(/AUTOINCREMENT/);
    expect(after.rows).toEqual(before);
  }, 30_000);
});
