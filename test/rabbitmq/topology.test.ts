/**
 * Broker refusals with errors that say what to do, operator-created topology, delayed delivery
 * precision, and the queue admin used by the error-queue tools.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import amqp from 'amqplib';
import { afterAll, expect, it } from 'vitest';
import { ErrorCodes, isSwitchyardError, silentLogger } from '../../src/index.js';
import { uuidv7 } from '../../src/core/ids.js';
import type { Transport, TransportMessage } from '../../src/core/transport.js';
import { rabbitmqTopology, rabbitmqTransport } from '../../src/rabbitmq/index.js';
import { waitFor } from '../../src/testing/wait.js';
import { deleteTopology, describeOnBroker, rabbit, uniquePrefix } from './fixtures/broker.js';

const run = promisify(execFile);
const signal = new AbortController().signal;

function message(n: number): TransportMessage {
  const id = uuidv7();
  return { id, headers: { 'sy1-message-id': id, n: String(n) }, body: JSON.stringify({ n }) };
}

async function receiveAll(t: Transport, queue: string, count: number, timeoutMs = 10_000) {
  const got: { message: TransportMessage; at: number }[] = [];
  const deadline = Date.now() + timeoutMs;
  while (got.length < count && Date.now() < deadline) {
    for (const r of await t.receive(queue, { max: count, waitMs: 200, signal })) {
      got.push({ message: r.message, at: Date.now() });
      await r.complete();
    }
  }
  return got;
}

describeOnBroker('RabbitMQ topology and refusals', () => {
  const prefix = uniquePrefix('topo');
  const queues = new Set<string>();
  const q = (name: string) => (queues.add(`${prefix}${name}`), `${prefix}${name}`);
  const transports: Transport[] = [];
  const open = async (options: Partial<Parameters<typeof rabbitmqTransport>[0]> = {}) => {
    const t = rabbitmqTransport({ url: rabbit.url, logger: silentLogger, ...options });
    transports.push(t);
    await t.open();
    return t;
  };
  afterAll(async () => {
    await Promise.all(transports.map((t) => t.close()));
    await deleteTopology({ queues });
  });

  it('refuses to declare an existing classic queue as quorum, saying how to resolve it', async () => {
    const name = q('classic');
    const raw = await amqp.connect(rabbit.url);
    const channel = await raw.createChannel();
    await channel.assertQueue(name, { durable: true });
    await raw.close();

    const t = await open();
    const error = await t.createQueue(name).catch((e: unknown) => e);
    expect(isSwitchyardError(error, ErrorCodes.TOPOLOGY_CONFLICT)).toBe(true);
    expect((error as Error).message).toContain(name);
    expect((error as Error).message).toMatch(/queueType: 'classic'/);
    // The transport stays usable after a refusal (only the declaring channel was closed).
    const other = q('after-refusal');
    await t.createQueue(other);
    await t.dispatch([{ destination: other, message: message(1) }]);
    expect(await receiveAll(t, other, 1)).toHaveLength(1);
  });

  it('refuses wrong credentials with an access error naming the fix', async () => {
    const url = new URL(rabbit.url);
    url.password = 'not-the-password';
    const t = rabbitmqTransport({ url: url.toString(), logger: silentLogger });
    const error = await t.open().catch((e: unknown) => e);
    await t.close();
    expect(isSwitchyardError(error, ErrorCodes.ACCESS_REFUSED)).toBe(true);
    expect((error as Error).message).toMatch(/set_permissions/);
    expect((error as Error).message).not.toContain('not-the-password');
  });

  it('works on a topology created by an operator from rabbitmqTopology(), and says what is missing before that', async () => {
    const name = q('operator');
    const t = await open({ createTopology: false });
    const missing = await t.createQueue(name).catch((e: unknown) => e);
    expect(isSwitchyardError(missing, ErrorCodes.QUEUE_NOT_FOUND)).toBe(true);

    // rabbitmqctl may run as another user: the file must be readable by it.
    const dir = mkdtempSync(path.join(tmpdir(), 'sy-topology-'));
    try {
      chmodSync(dir, 0o755);
      const file = path.join(dir, 'topology.json');
      writeFileSync(file, JSON.stringify(rabbitmqTopology({ queues: [name] })), { mode: 0o644 });
      await run('rabbitmqctl', ['import_definitions', file], { timeout: 60_000 });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    await t.createQueue(name);
    await t.dispatch([{ destination: name, message: message(2) }]);
    const [got] = await receiveAll(t, name, 1);
    expect(got?.message.body).toBe(JSON.stringify({ n: 2 }));
  });

  it('delivers delayed messages never early, within a bounded lateness, in due order where due times are further apart than that', async () => {
    const name = q('delays');
    const t = await open();
    await t.createQueue(name);
    // The first delayed send declares the delay topology; keep that out of the timing.
    await t.dispatch([{ destination: name, message: message(-1), deliverAt: Date.now() + 1 }]);
    expect(await receiveAll(t, name, 1)).toHaveLength(1);
    // Each delay takes its own path through the TTL levels (one hop, a quorum dead-letter with
    // its confirm, per set bit), so lateness differs per message: the design promises never
    // early and late by at most LATENESS_MS, hence order only for due times further apart than
    // that. 10 ms and 120 ms once arrived as 120 before 10 under load; that is allowed.
    const LATENESS_MS = 400;
    const delays = [900, 120, 400, 10, 650];
    const sentAt = Date.now();
    await t.dispatch(delays.map((ms, n) => ({ destination: name, message: message(n), deliverAt: sentAt + ms })));
    const got = await receiveAll(t, name, delays.length);
    const order = got.map((g) => Number(g.message.headers.n));
    expect([...order].sort()).toEqual([0, 1, 2, 3, 4]);
    for (const g of got) {
      const due = sentAt + delays[Number(g.message.headers.n)]!;
      expect(g.at).toBeGreaterThanOrEqual(due);
      expect(g.at - due).toBeLessThan(LATENESS_MS);
    }
    for (const [i, a] of order.entries()) {
      for (const b of order.slice(i + 1)) {
        if (delays[b]! + LATENESS_MS <= delays[a]!) expect.fail(`message ${b} (due at ${delays[b]} ms) arrived after ${a} (due at ${delays[a]} ms)`);
      }
    }
  });

  it('routes a published event to subscribed queues only, and stops after unsubscribe', async () => {
    const name = q('subscriber');
    const eventType = `${prefix.replaceAll('-', '_')}Sales.OrderPlaced`;
    const t = await open();
    await t.createQueue(name);
    const publish = (n: number) => {
      const m = message(n);
      return t.dispatch([{ topic: eventType, message: { ...m, headers: { ...m.headers, 'sy1-enclosed-types': eventType } } }]);
    };
    try {
      await t.subscribe!(name, eventType);
      await publish(1);
      expect((await receiveAll(t, name, 1)).map((g) => g.message.headers.n)).toEqual(['1']);
      await t.unsubscribe!(name, eventType);
      await publish(2);
      expect(await t.receive(name, { max: 1, waitMs: 300, signal })).toEqual([]);
      await t.subscribe!(name, eventType);
      await publish(3);
      expect((await receiveAll(t, name, 1)).map((g) => g.message.headers.n)).toEqual(['3']);
    } finally {
      await deleteTopology({ exchanges: [eventType] });
    }
  });

  it('lets operator tools peek, count and take messages (the error queue tools)', async () => {
    const name = q('error');
    const target = q('retried');
    const t = await open();
    await t.createQueue(name);
    await t.createQueue(target);
    const sent = [message(1), message(2), message(3)];
    await t.dispatch(sent.map((m) => ({ destination: name, message: m })));
    const admin = t.admin!;
    // depth is the broker's momentary count of ready messages; quorum queues update it a moment later.
    const depthIs = (n: number) => waitFor(async () => (await admin.depth(name)) === n, { what: `depth ${n}` });
    await depthIs(3);
    expect((await admin.peek(name, { offset: 1, limit: 5 })).map((m) => m.id)).toEqual([sent[1]!.id, sent[2]!.id]);
    await depthIs(3); // peeking took nothing
    const taken = await admin.take(name, [sent[1]!.id], (m) => [{ destination: target, message: m }]);
    expect(taken).toEqual([sent[1]!.id]);
    await depthIs(2);
    const [moved] = await receiveAll(t, target, 1);
    expect(moved?.message.id).toBe(sent[1]!.id);
    expect(await admin.moveAll(name, target)).toBe(2);
    await depthIs(0);
    expect((await receiveAll(t, target, 2)).map((g) => g.message.id).sort()).toEqual([sent[0]!.id, sent[2]!.id].sort());
  });
});
