/**
 * The transport conformance suite: every transport's test file is one call,
 *   transportConformance('sqlite', () => makeSqliteFixture());
 * Capabilities a transport lacks turn their tests into skips that say why.
 */
import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { handle, type HandlerContext } from '../core/context.js';
import { isSwitchyardError, ErrorCodes } from '../core/errors.js';
import { uuidv7 } from '../core/ids.js';
import { silentLogger } from '../core/logger.js';
import { defineCommand } from '../core/messages.js';
import type { Receipt, Transport, TransportMessage } from '../core/transport.js';
import { createEndpoint } from '../endpoint/endpoint.js';
import { failedMessages } from '../recoverability/failed-messages.js';
import { nodeScript } from './node-script.js';
import { waitFor } from './wait.js';

export interface TransportFixture {
  /** A new transport on the same storage or broker as every other transport of this fixture. */
  create(options?: { leaseMs?: number }): Transport;
  /** How a child process builds the same transport, for crash tests; undefined when in-process only. */
  childSpec?(options: { leaseMs: number }): { module: string; factory: string; options: unknown };
  /** Queue names unique to this fixture, so runs can share a broker. */
  queue(name: string): string;
  /**
   * Makes every lease held in `queue` run out now, as if its holders had paused past it (their
   * receipts stay in this process and renew only on their timer, which a lease of a minute keeps
   * from firing during a test). Transports whose leases live in a store the test can reach.
   */
  expireLeases?(queue: string): Promise<void>;
  /**
   * Writes a message straight into `queue`'s storage, unchecked, as another tool or a bug might
   * (id, headers text and body text as given). Transports that can hold arbitrary text join the
   * hostile-rows property test with it.
   */
  injectRaw?(queue: string, raw: { id: string; headers: string; body: string }): Promise<void>;
  cleanup(): Promise<void>;
}

const signal = new AbortController().signal;

function message(body: unknown = { n: 1 }, headers: Record<string, string> = {}): TransportMessage {
  const id = uuidv7();
  return { id, headers: { 'sy1-message-id': id, ...headers }, body: JSON.stringify(body) };
}

async function receiveOne(transport: Transport, queue: string, waitMs = 5000) {
  const deadline = Date.now() + waitMs;
  while (Date.now() < deadline) {
    const [receipt] = await transport.receive(queue, { max: 1, waitMs: 200, signal });
    if (receipt) return receipt;
  }
  throw new Error(`nothing arrived in ${queue} within ${waitMs} ms`);
}

function spawnConsumer(spec: unknown, queue: string, env: Record<string, string>) {
  const consumer = nodeScript('./crash-consumer.ts', import.meta.url);
  const child = spawn(process.execPath, [...consumer.execArgv, consumer.script], {
    env: { ...process.env, ...env, SWITCHYARD_TRANSPORT: JSON.stringify(spec), SWITCHYARD_QUEUE: queue },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  return {
    process: child,
    output: () => out,
    waitFor: (text: string) => waitFor(() => out.includes(text), { timeoutMs: 20_000, what: `the consumer process to print "${text}"` }),
  };
}

export function transportConformance(name: string, makeFixture: () => Promise<TransportFixture>): void {
  describe(`transport conformance: ${name}`, () => {
    const withTransport = async (fn: (fx: TransportFixture, t: Transport) => Promise<void>, leaseMs?: number) => {
      const fx = await makeFixture();
      const t = fx.create(leaseMs === undefined ? {} : { leaseMs });
      try {
        await t.open();
        await fn(fx, t);
      } finally {
        await t.close();
        await fx.cleanup();
      }
    };

    it('delivers what was sent, with its id, headers and body', () =>
      withTransport(async (fx, t) => {
        const q = fx.queue('basic');
        await t.createQueue(q);
        const sent = message({ text: 'héllo' }, { custom: 'yes' });
        await t.dispatch([{ destination: q, message: sent }]);
        const receipt = await receiveOne(t, q);
        expect(receipt.message).toEqual(sent);
        expect(receipt.deliveryCount).toBe(1);
        await receipt.complete();
        expect(await t.receive(q, { max: 1, waitMs: 50, signal })).toEqual([]);
      }));

    it('gives nothing from an empty queue', () =>
      withTransport(async (fx, t) => {
        const q = fx.queue('empty');
        await t.createQueue(q);
        expect(await t.receive(q, { max: 5, waitMs: 20, signal })).toEqual([]);
      }));

    it('refuses to send to a queue that does not exist, with a clear error', () =>
      withTransport(async (fx, t) => {
        const error = await t.dispatch([{ destination: fx.queue('missing'), message: message() }]).catch((e: unknown) => e);
        expect(isSwitchyardError(error, ErrorCodes.QUEUE_NOT_FOUND)).toBe(true);
      }));

    it('redelivers an abandoned message with a higher delivery count', () =>
      withTransport(async (fx, t) => {
        const q = fx.queue('abandon');
        await t.createQueue(q);
        const sent = message();
        await t.dispatch([{ destination: q, message: sent }]);
        await (await receiveOne(t, q)).abandon();
        const again = await receiveOne(t, q);
        expect(again.message.id).toBe(sent.id);
        expect(again.deliveryCount).toBe(2);
        await again.complete();
      }));

    it('sends a handler\'s messages only with the completion, and not at all when abandoned', () =>
      withTransport(async (fx, t) => {
        const [input, output] = [fx.queue('in'), fx.queue('out')];
        await t.createQueue(input);
        await t.createQueue(output);
        await t.dispatch([{ destination: input, message: message() }]);
        await (await receiveOne(t, input)).abandon();
        expect(await t.receive(output, { max: 1, waitMs: 50, signal })).toEqual([]);
        const produced = message({ produced: true });
        await (await receiveOne(t, input)).complete([{ destination: output, message: produced }]);
        expect((await receiveOne(t, output)).message.id).toBe(produced.id);
      }));

    it('completes atomically: a failing send leaves the received message in its queue', async (ctx) => {
      const fx = await makeFixture();
      const t = fx.create();
      try {
        if (!t.capabilities.atomicSendWithReceive) ctx.skip(`${name} does not complete atomically (capabilities.atomicSendWithReceive is false)`);
        await t.open();
        const q = fx.queue('atomic');
        await t.createQueue(q);
        const sent = message();
        await t.dispatch([{ destination: q, message: sent }]);
        const receipt = await receiveOne(t, q);
        const failed = await receipt.complete([{ destination: fx.queue('nowhere'), message: message() }]).catch((e: unknown) => e);
        expect(isSwitchyardError(failed, ErrorCodes.QUEUE_NOT_FOUND)).toBe(true);
        await receipt.abandon();
        expect((await receiveOne(t, q)).message.id).toBe(sent.id);
      } finally {
        await t.close();
        await fx.cleanup();
      }
    });

    it('forwards in one step: moves the messages no consumer holds to where route says, leaves the rest', (ctx) =>
      withTransport(async (fx, t) => {
        if (!t.forward) return ctx.skip(`${name} has no forward (a distributor receives and completes instead)`);
        const [from, to] = [fx.queue('forward-from'), fx.queue('forward-to')];
        await t.createQueue(from);
        await t.createQueue(to);
        const [held, moving, staying] = [message({ n: 1 }), message({ n: 2 }), message({ n: 3 })];
        await t.dispatch([held, moving, staying].map((m) => ({ destination: from, message: m })));
        const receipt = await receiveOne(t, from);
        expect(receipt.message.id).toBe(held.id);
        const route = (m: TransportMessage) => (m.id === staying.id ? undefined : { destination: to, message: { ...m, headers: { ...m.headers, 'x-forwarded': 'yes' } } });
        expect(await t.forward(from, { max: 10, waitMs: 0, signal }, route)).toBe(1);
        const arrived = await receiveOne(t, to);
        expect([arrived.message.id, arrived.message.headers['x-forwarded'], arrived.message.body]).toEqual([moving.id, 'yes', moving.body]);
        await receipt.complete();
        // A destination that does not exist moves nothing.
        const failed = await t.forward(from, { max: 10, waitMs: 0, signal }, (m) => ({ destination: fx.queue('nowhere'), message: m })).catch((e: unknown) => e);
        expect(isSwitchyardError(failed, ErrorCodes.QUEUE_NOT_FOUND)).toBe(true);
        expect((await receiveOne(t, from)).message.id).toBe(staying.id);
      }));

    it('dispatches a batch all or nothing', () =>
      withTransport(async (fx, t) => {
        const q = fx.queue('batch');
        await t.createQueue(q);
        const result = await t.dispatch([{ destination: q, message: message() }, { destination: fx.queue('nope'), message: message() }]).catch((e: unknown) => e);
        expect(result).toBeInstanceOf(Error);
        expect(await t.receive(q, { max: 5, waitMs: 50, signal })).toEqual([]);
      }));

    it('holds a delayed message until it is due', (ctx) =>
      withTransport(async (fx, t) => {
        if (!t.capabilities.delayedDelivery) ctx.skip(`${name} has no delayed delivery`);
        const q = fx.queue('delayed');
        await t.createQueue(q);
        const due = Date.now() + 400;
        await t.dispatch([{ destination: q, message: message(), deliverAt: due }]);
        expect(await t.receive(q, { max: 1, waitMs: 100, signal })).toEqual([]);
        const receipt = await receiveOne(t, q);
        expect(Date.now()).toBeGreaterThanOrEqual(due - 5);
        await receipt.complete();
      }));

    it('gives each message to one of several competing consumers', async () => {
      const fx = await makeFixture();
      const consumers = [fx.create(), fx.create(), fx.create()];
      try {
        await Promise.all(consumers.map((c) => c.open()));
        const q = fx.queue('compete');
        await consumers[0]!.createQueue(q);
        const total = 150;
        await consumers[0]!.dispatch(Array.from({ length: total }, (_, n) => ({ destination: q, message: message({ n }) })));
        const seen: string[] = [];
        await Promise.all(
          consumers.map(async (c) => {
            for (;;) {
              const receipts = await c.receive(q, { max: 7, waitMs: 100, signal });
              if (receipts.length === 0) return;
              for (const r of receipts) {
                seen.push(r.message.id);
                await r.complete();
              }
            }
          }),
        );
        expect(seen.length).toBe(total);
        expect(new Set(seen).size).toBe(total);
      } finally {
        await Promise.all(consumers.map((c) => c.close()));
        await fx.cleanup();
      }
    });

    it('after stopReceiving, a message it gives back goes to another consumer while its receipts stay valid', async () => {
      const fx = await makeFixture();
      const [stopping, other] = [fx.create(), fx.create()];
      try {
        await Promise.all([stopping.open(), other.open()]);
        const q = fx.queue('stop-receiving');
        await stopping.createQueue(q);
        await stopping.dispatch([1, 2, 3].map((n) => ({ destination: q, message: message({ n }) })));
        const held: Receipt[] = [];
        const deadline = Date.now() + 5000;
        while (held.length < 2 && Date.now() < deadline) held.push(...(await stopping.receive(q, { max: 2 - held.length, waitMs: 200, signal })));
        const [kept, givenBack] = held;
        if (!kept || !givenBack) throw new Error(`${name}: two receipts did not arrive within 5 s`);
        await stopping.stopReceiving?.(q);
        await givenBack.abandon();
        // The other consumer gets the given-back message and the one never received.
        const ids: string[] = [];
        for (let i = 0; i < 2; i++) {
          const receipt = await receiveOne(other, q);
          ids.push(receipt.message.id);
          await receipt.complete();
        }
        expect(ids).toContain(givenBack.message.id);
        expect(ids).not.toContain(kept.message.id);
        await kept.complete(); // still valid after stopReceiving
        expect(await other.receive(q, { max: 5, waitMs: 200, signal })).toEqual([]);
      } finally {
        await Promise.all([stopping.close(), other.close()]);
        await fx.cleanup();
      }
    });

    it('fences a consumer paused past its lease (SIGSTOP): after SIGCONT its completion fails and sends nothing', async (ctx) => {
      const fx = await makeFixture();
      const spec = fx.childSpec?.({ leaseMs: 400 });
      if (!spec) {
        await fx.cleanup();
        ctx.skip(`${name} lives inside one process: there is no consumer process to pause`);
      }
      const t = fx.create();
      try {
        await t.open();
        const [q, out] = [fx.queue('lease'), fx.queue('lease-out')];
        await t.createQueue(q);
        await t.createQueue(out);
        const sent = message();
        await t.dispatch([{ destination: q, message: sent }]);
        const child = spawnConsumer(spec!, q, { SWITCHYARD_COMPLETE_AFTER_MS: '200', SWITCHYARD_OUT_QUEUE: out });
        await child.waitFor(`holding ${sent.id}`);
        child.process.kill('SIGSTOP');
        const second = await receiveOne(t, q, 10_000);
        expect(second.deliveryCount).toBe(2);
        child.process.kill('SIGCONT');
        await child.waitFor('failed');
        expect(child.output()).toContain(`failed ${ErrorCodes.LEASE_LOST}`);
        expect(await t.receive(out, { max: 1, waitMs: 50, signal })).toEqual([]);
        await second.complete();
        child.process.kill('SIGKILL');
      } finally {
        await t.close();
        await fx.cleanup();
      }
    });

    it('a stale completion after the row was reused changes nothing', async (ctx) => {
      // A holder paused past its lease; meanwhile another consumer took the message and completed
      // it, and a new message arrived (on a store that reuses ids, in the same row id, and with the
      // same lease count). The stale holder's completion and abandon must not touch the new one.
      const fx = await makeFixture();
      const spec = fx.expireLeases ? undefined : fx.childSpec?.({ leaseMs: 400 });
      if (!fx.expireLeases && !spec) {
        await fx.cleanup();
        ctx.skip(`${name} has neither expireLeases nor a consumer process to pause: no way to make a holder stale`);
      }
      const holder = fx.create({ leaseMs: 60_000 });
      const other = fx.create({ leaseMs: 60_000 });
      let child: ReturnType<typeof spawnConsumer> | undefined;
      try {
        await Promise.all([holder.open(), other.open()]);
        const [q, out] = [fx.queue('reuse'), fx.queue('reuse-out')];
        await other.createQueue(q);
        await other.createQueue(out);
        const first = message({ n: 1 });
        await other.dispatch([{ destination: q, message: first }]);
        let stale: Receipt | undefined;
        if (fx.expireLeases) {
          stale = await receiveOne(holder, q);
          await fx.expireLeases(q);
        } else {
          child = spawnConsumer(spec!, q, { SWITCHYARD_COMPLETE_AFTER_MS: '200', SWITCHYARD_OUT_QUEUE: out });
          await child.waitFor(`holding ${first.id}`);
          child.process.kill('SIGSTOP');
        }
        const taken = await receiveOne(other, q, 10_000);
        expect([taken.message.id, taken.deliveryCount]).toEqual([first.id, 2]);
        await taken.complete();
        const second = message({ n: 2 });
        await other.dispatch([{ destination: q, message: second }]);
        const current = await receiveOne(other, q);
        expect([current.message.id, current.deliveryCount]).toEqual([second.id, 1]);
        if (stale) {
          const failed = await stale.complete([{ destination: out, message: message({ stale: true }) }]).catch((e: unknown) => e);
          expect(isSwitchyardError(failed, ErrorCodes.LEASE_LOST)).toBe(true);
          await stale.abandon(); // never throws for a lost lease, and must not release the new message
        } else {
          child!.process.kill('SIGCONT');
          const settled = child!;
          await waitFor(() => /completed|failed/.test(settled.output()), { timeoutMs: 20_000, what: 'the paused consumer to settle' });
          expect(child!.output()).toContain(`failed ${ErrorCodes.LEASE_LOST}`);
        }
        expect(await other.receive(q, { max: 1, waitMs: 50, signal })).toEqual([]);
        await current.complete(); // still held by its consumer: the stale holder changed nothing
        expect(await other.receive(out, { max: 1, waitMs: 50, signal })).toEqual([]);
        expect(await other.receive(q, { max: 1, waitMs: 50, signal })).toEqual([]);
      } finally {
        child?.process.kill('SIGKILL');
        await Promise.all([holder.close(), other.close()]);
        await fx.cleanup();
      }
    });

    it('delivers again the message of a consumer process killed with SIGKILL mid-handler', async (ctx) => {
      const fx = await makeFixture();
      const spec = fx.childSpec?.({ leaseMs: 500 });
      if (!spec) {
        await fx.cleanup();
        ctx.skip(`${name} lives inside one process: there is no consumer process to kill`);
      }
      const t = fx.create();
      try {
        await t.open();
        const q = fx.queue('crash');
        await t.createQueue(q);
        const sent = message();
        await t.dispatch([{ destination: q, message: sent }]);
        const child = spawnConsumer(spec!, q, {});
        await child.waitFor(`holding ${sent.id}`);
        child.process.kill('SIGKILL');
        await new Promise((resolve) => child.process.once('exit', resolve));
        const again = await receiveOne(t, q, 10_000);
        expect(again.message.id).toBe(sent.id);
        expect(again.deliveryCount).toBe(2);
        await again.complete();
      } finally {
        await t.close();
        await fx.cleanup();
      }
    });

    it('stops gracefully: stop waits for a running handler; a forced stop aborts its signal', async () => {
      const fx = await makeFixture();
      const Work = defineCommand<{ ms: number }>('Conformance.Work');
      const endpointName = fx.queue('StopTest');
      const seen = { started: 0, finished: 0, aborted: 0 };
      const sleeper = handle(Work, async (msg, ctx: HandlerContext) => {
        seen.started += 1;
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, msg.ms);
          ctx.signal.addEventListener('abort', () => {
            seen.aborted += 1;
            clearTimeout(timer);
            resolve();
          });
        });
        seen.finished += 1;
      });
      const make = () =>
        createEndpoint({ name: endpointName, transport: fx.create(), logger: silentLogger, routes: { 'Conformance.*': endpointName }, handlers: [sleeper] });
      const graceful = make();
      const forced = make();
      try {
        await graceful.start();
        await graceful.send(Work, { ms: 300 });
        await waitFor(() => seen.started === 1, { what: 'the handler to start' });
        await graceful.stop();
        expect(seen).toEqual({ started: 1, finished: 1, aborted: 0 });

        await forced.start();
        await forced.send(Work, { ms: 60_000 });
        await waitFor(() => seen.started === 2, { what: 'the second handler to start' });
        const t0 = Date.now();
        await forced.stop({ signal: AbortSignal.timeout(100) });
        expect(seen.aborted).toBe(1);
        expect(Date.now() - t0).toBeLessThan(5000);
      } finally {
        await graceful.stop().catch(() => undefined);
        await forced.stop().catch(() => undefined);
        await fx.cleanup();
      }
    });

    it('hostile rows: whatever a stored row holds, the endpoint stays up, handles every valid message once and moves each bad row to the error queue with a reason', async (ctx) => {
      const fx = await makeFixture();
      const fc = await import('fast-check').catch(() => undefined);
      if (!fx.injectRaw || !fc) {
        await fx.cleanup();
        return ctx.skip(!fc ? 'fast-check is not installed' : `${name} cannot hold arbitrary stored text (no injectRaw)`);
      }
      const Hostile = defineCommand<{ n: number }>('Conformance.Hostile');
      const typeHeader = 'sy1-enclosed-types';
      const inspector = fx.create();
      await inspector.open();
      const json = fc.jsonValue({ maxDepth: 2 });
      const headersText = fc.oneof(
        fc.string({ maxLength: 40 }).filter((t) => { try { JSON.parse(t); return false; } catch { return true; } }), // not JSON
        fc.constantFrom('null', '[]', '"text"', '42', 'true', '[{"a":1}]'), // JSON, not an object
        fc.dictionary(fc.string({ maxLength: 12 }), json, { maxKeys: 5 }).map((d) => JSON.stringify({ ...d, [typeHeader]: { toString: 1 } })), // non-string values
        fc.dictionary(fc.string({ maxLength: 12 }), fc.string({ maxLength: 20 }), { maxKeys: 5 }).map((d) => JSON.stringify({ ...d, [typeHeader]: 'Conformance.Unknown' })), // unknown type
        fc.constant(JSON.stringify({ [typeHeader]: 'Conformance.Hostile', big: 'x'.repeat(20_000) })), // over the header limit
      );
      const row = fc.record({ missingId: fc.boolean(), headers: headersText, body: fc.oneof(fc.string({ maxLength: 30 }), json.map((v) => JSON.stringify(v) ?? '')) });
      let run = 0;
      try {
        await fc.assert(
          fc.asyncProperty(fc.array(row, { minLength: 1, maxLength: 5 }), fc.integer({ min: 1, max: 4 }), async (rows, valid) => {
            run += 1;
            const endpointName = fx.queue(`Hostile${run}`);
            const errorQueue = fx.queue(`hostile-error-${run}`);
            const handled = new Map<number, number>();
            const endpoint = createEndpoint({
              name: endpointName,
              transport: fx.create(),
              logger: silentLogger,
              routes: { 'Conformance.*': endpointName },
              recoverability: { errorQueue },
              handlers: [handle(Hostile, (m) => void handled.set(m.n, (handled.get(m.n) ?? 0) + 1))],
            });
            await inspector.createQueue(endpointName);
            await inspector.createQueue(errorQueue);
            for (const [i, r] of rows.entries()) await fx.injectRaw!(endpointName, { id: r.missingId ? '' : `bad-${run}-${i}`, headers: r.headers, body: r.body });
            // peek reads every row, whatever it holds
            expect((await inspector.admin!.peek(endpointName, { offset: 0, limit: 100 })).length).toBe(rows.length);
            try {
              await endpoint.start();
              for (let n = 0; n < valid; n++) await endpoint.send(Hostile, { n });
              await waitFor(async () => (await inspector.admin!.depth(endpointName)) === 0 && (await inspector.admin!.depth(errorQueue)) === rows.length, {
                what: `${rows.length} bad rows in ${errorQueue} and none left in ${endpointName}`,
              });
              expect(endpoint.status).toBe('running');
              expect([...handled.entries()].sort(([a], [b]) => a - b)).toEqual(Array.from({ length: valid }, (_, n) => [n, 1]));
              const failed = await inspector.admin!.peek(errorQueue, { offset: 0, limit: 100 });
              for (const m of failed) expect(typeof m.headers['sy1-failure-reason']).toBe('string');
              const listed = await failedMessages(inspector, { errorQueue }).list({ limit: 100 });
              expect(listed.total).toBe(rows.length);
              for (const m of listed.messages) expect(m.reason).toBeTruthy();
            } finally {
              await endpoint.stop();
            }
          }),
          { numRuns: 12, seed: Number(process.env.SWITCHYARD_FC_SEED ?? 16), endOnFailure: true },
        );
      } finally {
        await inspector.close();
        await fx.cleanup();
      }
    }, 60_000);

    it('closes twice without error', async () => {
      const fx = await makeFixture();
      const t = fx.create();
      await t.open();
      await t.close();
      await t.close();
      await fx.cleanup();
    });
  });
}
