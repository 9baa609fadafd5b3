import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { createEndpoint, defineCommand, handle, silentLogger } from '../../src/index.js';
import { sqliteTransport } from '../../src/sqlite/index.js';

const Ping = defineCommand<{ n: number }>('Config.Ping');

describe('SQLite transport configuration', () => {
  it('stops start-up naming `path` and the folder to create when the folder does not exist', async () => {
    const endpoint = createEndpoint({
      name: 'Config',
      transport: sqliteTransport({ path: '/nonexistent-folder/switchyard.db' }),
      logger: silentLogger,
      handlers: [handle(Ping, () => undefined)],
    });
    await expect(endpoint.start()).rejects.toThrow(/option `path` is "\/nonexistent-folder\/switchyard.db", but its folder \/nonexistent-folder does not exist.*mkdir -p/);
    expect(endpoint.status).toBe('stopped');
  });

  it('says the file is not a database when it is not one', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'sy-config-'));
    const file = path.join(dir, 'not-a-db.db');
    writeFileSync(file, 'this is a text file, not SQLite '.repeat(100));
    try {
      const endpoint = createEndpoint({ name: 'Config', transport: sqliteTransport({ path: file }), logger: silentLogger, handlers: [handle(Ping, () => undefined)] });
      await expect(endpoint.start()).rejects.toThrow(/Cannot open the SQLite database.*Check that the file is a SQLite database/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
