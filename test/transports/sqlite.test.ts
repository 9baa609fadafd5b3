import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { sqliteTransport } from '../../src/sqlite/index.js';
import { recoverabilityConformance, transportConformance, type TransportFixture } from '../../src/testing/conformance.js';

const fixture = async (): Promise<TransportFixture> => {
  const dir = mkdtempSync(path.join(tmpdir(), 'sy-sqlite-'));
  const file = path.join(dir, 'bus.db');
  return {
    create: (options) => sqliteTransport({ path: file, ...options }),
    childSpec: ({ leaseMs }) => ({
      module: pathToFileURL(path.resolve('src/sqlite/index.ts')).href,
      factory: 'sqliteTransport',
      options: { path: file, leaseMs },
    }),
    queue: (name) => name,
    cleanup: async () => rmSync(dir, { recursive: true, force: true }),
  };
};

transportConformance('sqlite', fixture);
recoverabilityConformance('sqlite', fixture);
