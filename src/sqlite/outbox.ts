/**
 * The transactional outbox on the application's own SQLite file (see src/outbox/outbox.ts):
 * `sy_inbox` and `sy_outbox` next to the application's tables. As with the transport's unit of
 * work (src/sqlite/session.ts), a handler's writes are queued (`sqliteSession(ctx).run(...)`) and
 * run at the commit, in one transaction with the inbox row and the outbox record, under a
 * savepoint of their own inside the group commit.
 */
import { ErrorCodes, SwitchyardError } from '../core/errors.js';
import type { Outgoing } from '../core/transport.js';
import { outboxWith, type Outbox, type OutboxRecord, type OutboxSettings, type OutboxStore } from '../outbox/outbox.js';
import { BOUND_LIMIT, GroupCommitter, migrate, openDatabase, savepointRunner } from './database.js';
import type { SqliteOptions } from './options.js';
import { SqliteUnitOfWork, StatementCache } from './session.js';

export interface SqliteOutboxOptions extends SqliteOptions, OutboxSettings {}

const MIGRATIONS = [
  {
    version: 1,
    breaking: false,
    sql: `
      CREATE TABLE sy_inbox (endpoint TEXT NOT NULL, message_id TEXT NOT NULL, processed_at INTEGER NOT NULL, PRIMARY KEY (endpoint, message_id));
      CREATE INDEX sy_inbox_processed_at ON sy_inbox (processed_at);
      CREATE TABLE sy_outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, batch TEXT NOT NULL, claimed_by TEXT NOT NULL,
        claim_token INTEGER NOT NULL, claimed_until INTEGER NOT NULL, created_at INTEGER NOT NULL);
      CREATE INDEX sy_outbox_claimed_until ON sy_outbox (claimed_until);`,
  },
] as const;

/** `outbox: sqliteOutbox({ path: './app.db' })` in an endpoint's options. */
export function sqliteOutbox(options: SqliteOutboxOptions): Outbox {
  return outboxWith(sqliteOutboxStore(options), options);
}

function prepare(cache: StatementCache) {
  return {
    processed: cache.prepare('SELECT 1 FROM sy_inbox WHERE endpoint = ? AND message_id = ?'),
    markProcessed: cache.prepare('INSERT OR IGNORE INTO sy_inbox (endpoint, message_id, processed_at) VALUES (?, ?, ?)'),
    insert: cache.prepare('INSERT INTO sy_outbox (batch, claimed_by, claim_token, claimed_until, created_at) VALUES (?, ?, 1, ?, ?)'),
    claim: cache.prepare(`UPDATE sy_outbox SET claimed_by = ?, claim_token = claim_token + 1, claimed_until = ?
      WHERE id IN (SELECT id FROM sy_outbox WHERE claimed_until < ? ORDER BY id ${BOUND_LIMIT}) RETURNING id, claim_token, batch`),
    renew: cache.prepare('UPDATE sy_outbox SET claimed_until = ? WHERE id = ? AND claim_token = ?'),
    remove: cache.prepare('DELETE FROM sy_outbox WHERE id = ? AND claim_token = ?'),
    prune: cache.prepare('DELETE FROM sy_inbox WHERE processed_at < ?'),
  };
}

interface OpenOutbox {
  readonly close: () => void;
  readonly cache: StatementCache;
  readonly committer: GroupCommitter;
  readonly statements: ReturnType<typeof prepare>;
  readonly underSavepoint: <T>(work: () => T) => T;
}

export function sqliteOutboxStore(options: SqliteOptions): OutboxStore {
  let state: OpenOutbox | undefined;
  const opened = (): OpenOutbox => {
    if (!state) {
      throw new SwitchyardError(ErrorCodes.NOT_RUNNING, 'The SQLite outbox is not open.', { fix: 'Pass it as the endpoint option `outbox` and start the endpoint: the endpoint opens and closes it.' });
    }
    return state;
  };
  const toRecord = (row: { id: number; claim_token: number; batch: string }): OutboxRecord => ({ id: String(row.id), token: row.claim_token, batch: JSON.parse(row.batch) as Outgoing[] });

  return {
    storage: 'sqlite',
    async open() {
      if (state) return;
      const db = openDatabase(options);
      migrate(db, 'outbox', MIGRATIONS);
      const cache = new StatementCache(db);
      state = {
        close: () => db.close(),
        cache,
        committer: new GroupCommitter(db, options.busyTimeoutMs, options.synchronous),
        statements: prepare(cache),
        underSavepoint: savepointRunner(db),
      };
    },
    async close() {
      if (!state) return;
      state.committer.close();
      state.close();
      state = undefined;
    },
    async transaction(owner, leaseMs, work) {
      const { cache, committer, statements, underSavepoint } = opened();
      const unit = new SqliteUnitOfWork(cache);
      let processed: [string, string] | undefined;
      const batches: (readonly Outgoing[])[] = [];
      const value = await work({
        session: unit,
        async markProcessed(endpoint, messageId) {
          if (statements.processed.get(endpoint, messageId) !== undefined) return false;
          processed = [endpoint, messageId];
          return true;
        },
        async store(batch) {
          if (batch.length > 0) batches.push(batch);
        },
      });
      return committer.run(() =>
        underSavepoint(() => {
          // A copy of the message committed since the check above: the ignored insert wrote nothing, keep nothing of this one.
          if (processed && statements.markProcessed.run(...processed, Date.now()).changes === 0) return { value, records: [], duplicate: true };
          unit.apply();
          const now = Date.now();
          const records = batches.map((batch): OutboxRecord => ({ id: String(statements.insert.run(JSON.stringify(batch), owner, now + leaseMs, now).lastInsertRowid), token: 1, batch }));
          return { value, records, duplicate: false };
        }),
      );
    },
    async claimExpired(owner, leaseMs, max) {
      const { committer, statements } = opened();
      const rows = await committer.run(() => statements.claim.all(owner, Date.now() + leaseMs, Date.now(), max) as { id: number; claim_token: number; batch: string }[]);
      return rows.map(toRecord).sort((a, b) => Number(a.id) - Number(b.id));
    },
    async renew(record, leaseMs) {
      const { committer, statements } = opened();
      return committer.run(() => statements.renew.run(Date.now() + leaseMs, Number(record.id), record.token).changes === 1, 'bookkeeping');
    },
    async remove(record) {
      const { committer, statements } = opened();
      return committer.run(() => statements.remove.run(Number(record.id), record.token).changes === 1);
    },
    async pruneInbox(before) {
      const { committer, statements } = opened();
      return committer.run(() => statements.prune.run(before).changes, 'bookkeeping');
    },
  };
}
