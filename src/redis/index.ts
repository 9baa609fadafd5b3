/** `switchyard/redis`: Redis adapters (needs the optional peer dependency `ioredis`). */
export { redisDatasetStore } from './dataset-store.js';
export type { RedisDatasetStoreOptions } from './dataset-store.js';
