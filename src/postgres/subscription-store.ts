/**
 * PostgreSQL subscription store: every publisher instance, on any machine, reads and writes the
 * same `<schema>.subscriptions` table, one row per (message type, endpoint, instance) as
 * src/pubsub/store.ts describes. subscribe is one transaction: delete the other kind's rows for
 * (type, endpoint), then upsert the row.
 */
import type { Subscription, SubscriptionStore } from '../pubsub/store.js';
import { WHOLE_ENDPOINT } from '../pubsub/store.js';
import { migrate, quotedSchema, type PostgresMigration } from './migrations.js';
import { adapterPool, checkConnectionOptions, describeTarget, unreachable, type PostgresConnectionOptions } from './pool.js';

export type PostgresSubscriptionStoreOptions = PostgresConnectionOptions;

const MIGRATIONS: readonly PostgresMigration[] = [
  {
    version: 1,
    breaking: false,
    sql: `CREATE TABLE {s}.subscriptions (
      message_type text NOT NULL, endpoint text NOT NULL, instance text NOT NULL, address text NOT NULL,
      updated_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (message_type, endpoint, instance))`,
  },
];

/** Connects and migrates on first use, so creating the store has no side effects. */
export function postgresSubscriptionStore(options: PostgresSubscriptionStoreOptions): SubscriptionStore {
  checkConnectionOptions('postgresSubscriptionStore', options);
  const schema = options.schema ?? 'switchyard';
  const s = quotedSchema(schema, 'postgresSubscriptionStore');
  const where = describeTarget(options);
  const { pool, end } = adapterPool(options, 4);
  let ready: Promise<void> | undefined;
  const run = async <T>(body: () => Promise<T>): Promise<T> => {
    ready ??= migrate(pool, schema, 'subscriptions', MIGRATIONS).catch((error: unknown) => {
      ready = undefined;
      throw error;
    });
    try {
      await ready;
      return await body();
    } catch (error) {
      throw unreachable(error, where);
    }
  };
  return {
    subscribe: ({ messageType, endpoint, instance, address }: Subscription) =>
      run(async () => {
        // One statement, so one transaction: the other kind's rows go as this row arrives.
        await pool.query(
          `WITH gone AS (DELETE FROM ${s}.subscriptions WHERE message_type = $1 AND endpoint = $2
             AND (CASE WHEN $3 = '${WHOLE_ENDPOINT}' THEN instance <> $3 ELSE instance = '${WHOLE_ENDPOINT}' END))
           INSERT INTO ${s}.subscriptions (message_type, endpoint, instance, address) VALUES ($1, $2, $3, $4)
           ON CONFLICT (message_type, endpoint, instance) DO UPDATE SET address = excluded.address, updated_at = now()`,
          [messageType, endpoint, instance, address],
        );
      }),
    unsubscribe: ({ messageType, endpoint, instance }) =>
      run(async () => {
        await pool.query(`DELETE FROM ${s}.subscriptions WHERE message_type = $1 AND endpoint = $2 AND instance = $3`, [messageType, endpoint, instance]);
      }),
    subscribersOf: (messageTypes) =>
      run(async () => (await pool.query<Subscription>(
        `SELECT message_type AS "messageType", endpoint, instance, address FROM ${s}.subscriptions WHERE message_type = ANY($1::text[])`,
        [[...messageTypes]],
      )).rows),
    close: end,
  };
}
