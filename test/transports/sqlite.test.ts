import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { sqliteTransport } from '../../src/sqlite/index.js';
import { recoverabilityConformance, transportConformance, type TransportFixture } from '../../src/testing/conformance.js';

const fixture = async (): Promise<TransportFixture> => {
  const dir = mkdtempSync(path.join(tmpdir(), 'sy-sqlite-'));
  const file = path.join(dir, 'bus.db');
  /** A second connection, as another tool or process would open the file. */
  const direct = <T>(fn: (db: Database.Database) => T): T => {
    const db = new Database(file, { timeout: 5000 });
    try {
      return fn(db);
    } finally {
      db.close();
    }
  };
  return {
    create: (options) => sqliteTransport({ path: file, ...options }),
    childSpec: ({ leaseMs }) => ({
      module: pathToFileURL(path.resolve('src/sqlite/index.ts')).href,
      factory: 'sqliteTransport',
      options: { path: file, leaseMs },
    }),
    queue: (name) => name,
    expireLeases: async (queue) => {
      direct((db) => db.prepare('UPDATE sy_messages SET visible_at = 0 WHERE queue = ? AND visible_at > ?').run(queue, Date.now()));
    },
    injectRaw: async (queue, { id, headers, body }) => {
      direct((db) => db.prepare('INSERT INTO sy_messages (queue, id, headers, body, visible_at) VALUES (?, ?, ?, ?, 0)').run(queue, id, headers, body));
    },
    cleanup: async () => rmSync(dir, { recursive: true, force: true }),
  };
};

transportConformance('sqlite', fixture);
recoverabilityConformance('sqlite', fixture);
