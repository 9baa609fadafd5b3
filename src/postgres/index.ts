/** `switchyard/postgres`: PostgreSQL adapters (needs the optional peer dependency `pg`). */
export { postgresDatasetStore } from './dataset-store.js';
export type { PostgresDatasetStoreOptions } from './dataset-store.js';
