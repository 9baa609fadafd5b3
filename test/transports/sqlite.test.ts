import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { sqliteTransport } from '../../src/sqlite/index.js';
import { transportConformance } from '../../src/testing/conformance.js';

transportConformance('sqlite', async () => {
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
});
