export { sqliteTransport } from './transport.js';
export { sqliteSubscriptionStore } from './subscription-store.js';
export type { SqliteSubscriptionStoreOptions } from './subscription-store.js';
export type { SqliteTransportOptions } from './transport.js';
export type { SqliteOptions, Synchronous } from './options.js';
export { sqliteDatasetStore } from './dataset-store.js';
export { DISTRIBUTOR_SYNCHRONOUS, sqliteDistributorStore } from './distributor-store.js';
export type { SqliteDatasetStoreOptions } from './dataset-store.js';
