/**
 * SQLite subscription store: every publisher instance on the machine opens the same database
 * file (the transport's file is fine). Table `sy_subscriptions`, one row per
 * (message type, endpoint, instance) as src/pubsub/store.ts describes.
 *
 * subscribe: one IMMEDIATE transaction: delete the other kind's rows for (type, endpoint), then
 * upsert the row. unsubscribe: delete the row. subscribersOf: one SELECT over the types.
 * Durability follows the database's `synchronous` setting (FULL by default).
 */
import type Database from 'better-sqlite3';
import type { Subscription, SubscriptionStore } from '../pubsub/store.js';
import { WHOLE_ENDPOINT } from '../pubsub/store.js';
import { migrate, openDatabase } from './database.js';
import type { SqliteOptions } from './options.js';

export type SqliteSubscriptionStoreOptions = SqliteOptions;

const MIGRATIONS = [
  {
    version: 1,
    breaking: false,
    sql: `
      CREATE TABLE sy_subscriptions (
        message_type TEXT NOT NULL,
        endpoint TEXT NOT NULL,
        instance TEXT NOT NULL,
        address TEXT NOT NULL,
        updated_at INTEGER NOT NULL,
        PRIMARY KEY (message_type, endpoint, instance)
      ) WITHOUT ROWID;`,
  },
] as const;

function prepare(db: Database.Database) {
  return {
    removeInstanceRows: db.prepare('DELETE FROM sy_subscriptions WHERE message_type = ? AND endpoint = ? AND instance <> ?'),
    upsert: db.prepare(`INSERT INTO sy_subscriptions (message_type, endpoint, instance, address, updated_at) VALUES (?, ?, ?, ?, ?)
      ON CONFLICT (message_type, endpoint, instance) DO UPDATE SET address = excluded.address, updated_at = excluded.updated_at`),
    remove: db.prepare('DELETE FROM sy_subscriptions WHERE message_type = ? AND endpoint = ? AND instance = ?'),
    subscribersOf: db.prepare(`SELECT message_type AS messageType, endpoint, instance, address FROM sy_subscriptions
      WHERE message_type IN (SELECT value FROM json_each(?))`),
  };
}

/** Opens the database on first use, so creating the store has no side effects. */
export function sqliteSubscriptionStore(options: SqliteSubscriptionStoreOptions): SubscriptionStore {
  let opened: { db: Database.Database; statements: ReturnType<typeof prepare> } | undefined;
  const open = () => {
    if (!opened) {
      const db = openDatabase(options);
      try {
        migrate(db, 'subscriptions', MIGRATIONS);
      } catch (error) {
        db.close();
        throw error;
      }
      opened = { db, statements: prepare(db) };
    }
    return opened;
  };
  return {
    async subscribe({ messageType, endpoint, instance, address }: Subscription) {
      const { db, statements } = open();
      db.transaction(() => {
        if (instance === WHOLE_ENDPOINT) statements.removeInstanceRows.run(messageType, endpoint, WHOLE_ENDPOINT);
        else statements.remove.run(messageType, endpoint, WHOLE_ENDPOINT);
        statements.upsert.run(messageType, endpoint, instance, address, Date.now());
      }).immediate();
    },
    async unsubscribe({ messageType, endpoint, instance }) {
      open().statements.remove.run(messageType, endpoint, instance);
    },
    async subscribersOf(messageTypes) {
      return open().statements.subscribersOf.all(JSON.stringify(messageTypes)) as Subscription[];
    },
    async close() {
      opened?.db.close();
      opened = undefined;
    },
  };
}
