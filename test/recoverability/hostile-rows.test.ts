/**
 * Rows written straight into SQLite queue tables (an older version, another tool, a bug): each
 * defect reported in issue 16, as an operator met it. The endpoint stays up, the other messages
 * are handled, the bad row lands in the error queue with a reason, and the errors API and CLI
 * read it. (The randomised version of this runs on every transport that can hold arbitrary
 * bytes: src/testing/transport-conformance.ts, "hostile rows".)
 */
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Headers } from '../../src/core/headers.js';
import type { Transport } from '../../src/core/transport.js';
import { createEndpoint, defineCommand, failedMessages, handle, silentLogger, type Endpoint } from '../../src/index.js';
import { FailureHeaders } from '../../src/recoverability/failure-headers.js';
import { sqliteTransport } from '../../src/sqlite/index.js';
import { waitFor } from '../../src/testing/wait.js';
import { runCli, tempDb, type TempDb } from './fixtures/bus.js';

const Ping = defineCommand<{ n: number }>('Hostile.Ping');

let db: TempDb;
let endpoint: Endpoint | undefined;
let inspector: Transport;
let handled: number[];

beforeEach(async () => {
  db = tempDb();
  handled = [];
  inspector = sqliteTransport({ path: db.file });
  await inspector.open();
  await inspector.createQueue('Hostile');
  await inspector.createQueue('error');
});

afterEach(async () => {
  await endpoint?.stop();
  endpoint = undefined;
  await inspector.close();
  db.cleanup();
});

/** Writes rows as another tool would: straight into the table, no checks. */
function insertRaw(queue: string, rows: Array<{ id?: unknown; headers: unknown; body: unknown }>): void {
  const raw = new Database(db.file, { timeout: 5000 });
  try {
    const insert = raw.prepare('INSERT INTO sy_messages (queue, id, headers, body, visible_at) VALUES (?, ?, ?, ?, 0)');
    for (const row of rows) insert.run(queue, row.id ?? 'bad', row.headers, row.body);
  } finally {
    raw.close();
  }
}

function validHeaders(id: string, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({ [Headers.MessageId]: id, [Headers.Intent]: 'send', [Headers.EnclosedTypes]: 'Hostile.Ping', ...extra });
}

async function start(): Promise<Endpoint> {
  endpoint = createEndpoint({
    name: 'Hostile',
    transport: sqliteTransport({ path: db.file }),
    logger: silentLogger,
    concurrency: 4,
    handlers: [handle(Ping, (ping) => void handled.push(ping.n))],
  });
  await endpoint.start();
  return endpoint;
}

async function errorQueueHolds(count: number) {
  return waitFor(async () => {
    const page = await failedMessages(inspector).list({ limit: 100 });
    return page.total === count && (await inspector.admin!.depth('Hostile')) === 0 && page;
  }, { what: `${count} message(s) in the error queue and none left in Hostile` });
}

describe('hostile rows in a SQLite queue', () => {
  it('headers that are JSON null: the endpoint stays up, the row goes to the error queue, the next message is handled', async () => {
    insertRaw('Hostile', [{ id: 'null-headers', headers: 'null', body: '{}' }]);
    const ep = await start();
    await ep.sendLocal(Ping, { n: 1 });
    const page = await errorQueueHolds(1);
    await waitFor(() => handled.length === 1, { what: 'the valid message to be handled' });
    expect(page.messages[0]).toMatchObject({ id: 'null-headers', exceptionCode: 'SY_ERR_MALFORMED_MESSAGE' });
    expect(page.messages[0]!.reason).toMatch(/malformed envelope: headers are JSON null, not an object/);
    expect(ep.status).toBe('running');
  });

  it('an enclosed-types header that is an object with a non-function toString', async () => {
    insertRaw('Hostile', [{ id: 'object-type', headers: validHeaders('object-type', { [Headers.EnclosedTypes]: { toString: 1 } }), body: '{"n":0}' }]);
    const ep = await start();
    await ep.sendLocal(Ping, { n: 1 });
    const page = await errorQueueHolds(1);
    expect(page.messages[0]!.reason).toContain(`header "${Headers.EnclosedTypes}" is an object, not a string`);
    const shown = await failedMessages(inspector).show('object-type');
    expect(shown!.headers[Headers.RawHeaders]).toContain('"toString":1');
    expect(shown!.headers[Headers.MessageId]).toBe('object-type'); // the readable headers are kept
    await waitFor(() => handled.length === 1, { what: 'the valid message to be handled' });
  });

  it('headers that are not JSON do not stall the batch: the valid messages are handled, peek reads the row', async () => {
    insertRaw('Hostile', [
      { id: 'ok-1', headers: validHeaders('ok-1'), body: '{"n":1}' },
      { id: 'not-json', headers: '{"sy1-message-id": "not-json", oops', body: 'also not json' },
      { id: 'ok-2', headers: validHeaders('ok-2'), body: '{"n":2}' },
    ]);
    const peeked = await inspector.admin!.peek('Hostile', { offset: 0, limit: 10 });
    expect(peeked.map((m) => m.id)).toEqual(['ok-1', 'not-json', 'ok-2']);
    expect(peeked[1]!.headers[Headers.EnvelopeError]).toMatch(/headers are not valid JSON/);
    expect(peeked[1]!.headers[Headers.RawHeaders]).toBe('{"sy1-message-id": "not-json", oops');
    await start();
    const page = await errorQueueHolds(1);
    await waitFor(() => handled.length === 2, { what: 'both valid messages to be handled' });
    expect(handled.sort()).toEqual([1, 2]);
    expect(page.messages[0]).toMatchObject({ id: 'not-json', immediateAttempts: 1, delayedRetries: 0 });
    const shown = await failedMessages(inspector).show('not-json');
    expect(shown!.body).toBe('also not json');
    expect(shown!.headers[FailureHeaders.FailedQueue]).toBe('Hostile');
  });

  it('ids and bodies that are not text, and a missing id', async () => {
    insertRaw('Hostile', [
      { id: Buffer.from([0xff, 0x00, 0x41]), headers: validHeaders('blob-id'), body: '{"n":9}' },
      { id: 'blob-body', headers: validHeaders('blob-body'), body: Buffer.from([0x7b, 0xff, 0x7d]) },
      { id: '', headers: '{}', body: '{}' },
    ]);
    await start();
    const page = await errorQueueHolds(3);
    const byId = new Map(page.messages.map((m) => [m.id, m]));
    expect(byId.get('blob-id')!.reason).toMatch(/the id is 3 bytes, not text/);
    expect(byId.get('blob-body')!.reason).toMatch(/the body is 3 bytes, not text/);
    const missing = page.messages.find((m) => m.id.startsWith('row-'));
    expect(missing!.reason).toMatch(/the id is missing/);
    expect(handled).toEqual([]);
  });

  it('errors list, show and the CLI read an error queue holding a non-string enclosed-types header', async () => {
    insertRaw('error', [
      { id: 'odd', headers: JSON.stringify({ [Headers.EnclosedTypes]: ['Sales.A'], [FailureHeaders.Reason]: 7 }), body: 'raw body' },
      { id: 'garbage', headers: '\u0000\u001b[31mnot json', body: '{}' },
    ]);
    const page = await failedMessages(inspector).list();
    expect(page.total).toBe(2);
    expect(page.messages.map((m) => [m.id, m.messageType])).toEqual([['odd', undefined], ['garbage', undefined]]);
    expect(page.messages[1]!.reason).toMatch(/headers are not valid JSON/);
    const list = await runCli(['errors', 'list', '--sqlite', db.file]);
    expect(list.code, list.stderr).toBe(0);
    expect(list.stdout).toMatch(/^2 failed messages in error /);
    // No attempt counts in the headers: unknown, like the other columns, not "0 times".
    expect(list.stdout).toMatch(/^odd +\? +\? +\? +\? +unknown:/m);
    expect(list.stdout).toMatch(/garbage .*headers are not valid JSON/);
    const show = await runCli(['errors', 'show', 'garbage', '--sqlite', db.file]);
    expect(show.code, show.stderr).toBe(0);
    expect(show.stdout).toMatch(/raw headers \(as stored\)\n\[31mnot json/);
    expect(show.stdout).not.toContain('\u001b');
  });
});
