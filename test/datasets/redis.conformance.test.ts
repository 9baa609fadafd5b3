import { Redis } from 'ioredis';
import { describe } from 'vitest';
import { redisDatasetStore } from '../../src/redis/index.js';
import { datasetStoreConformance } from '../../src/testing/dataset-conformance.js';
import { service } from '../support/services.js';

const { url, skipReason } = await service('redis');

describe.skipIf(!!skipReason)(`redis datasets${skipReason ? ` (skipped: ${skipReason})` : ''}`, () => {
  for (const wakeRecords of [true, false]) {
    datasetStoreConformance(`redis (wakeRecords: ${wakeRecords})`, async () => {
      const prefix = `sy-ds-conf-${process.pid}-${Date.now().toString(36)}-${wakeRecords ? 'w' : 'r'}`;
      return {
        makeStore: () => redisDatasetStore({ url, prefix, wakeRecords }),
        cleanup: async () => {
          const redis = new Redis(url);
          const found = await redis.keys(`${prefix}:*`);
          if (found.length > 0) await redis.del(...found);
          await redis.quit();
        },
      };
    });
  }
});
