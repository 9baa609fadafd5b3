/** `switchyard/postgres`: PostgreSQL adapters (needs the optional peer dependency `pg`). */
export { postgresDatasetStore } from './dataset-store.js';
export type { PostgresDatasetStoreOptions } from './dataset-store.js';
export { postgresOutbox, postgresOutboxStore } from './outbox.js';
export type { PostgresOutboxOptions } from './outbox.js';
export { postgresTransport } from './transport.js';
export type { PostgresTransportOptions } from './transport.js';
export { postgresClient } from './session.js';
export { postgresSubscriptionStore } from './subscription-store.js';
export type { PostgresSubscriptionStoreOptions } from './subscription-store.js';
export type { PostgresConnectionOptions } from './pool.js';
export { postgresDistributorStore } from './distributor-store.js';
export type { PostgresDistributorStoreOptions } from './distributor-store.js';
