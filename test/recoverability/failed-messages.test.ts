import { describe, expect, it } from 'vitest';
import { isSwitchyardError } from '../../src/core/errors.js';
import type { TransportMessage, Transport } from '../../src/core/transport.js';
import { makeIdentity } from '../../src/core/identity.js';
import { memoryTransport } from '../../src/memory/index.js';
import { failedMessages } from '../../src/recoverability/failed-messages.js';
import { errorQueueHeaders, FailureHeaders } from '../../src/recoverability/failure-headers.js';

interface Failure {
  id: string;
  type: string;
  queue: string;
  endpoint: string;
  error: Error;
  at: string;
}

function failed(f: Failure): TransportMessage {
  const headers = errorQueueHeaders(
    { 'sy1-message-id': f.id, 'sy1-enclosed-types': f.type, [FailureHeaders.DelayedRound]: '3' },
    { error: f.error, reason: 'failed 6 times in each of 4 rounds', failedQueue: f.queue, identity: makeIdentity(f.endpoint, 'host', 1, 'a1'), attempts: 6, now: new Date(f.at) },
  );
  return { id: f.id, headers, body: JSON.stringify({ id: f.id }) };
}

async function setup(): Promise<Transport> {
  const transport = memoryTransport();
  for (const q of ['error', 'Sales', 'Billing']) await transport.createQueue(q);
  const timeout = Object.assign(new Error('connect ETIMEDOUT 10.0.0.1:443'), { name: 'TimeoutError' });
  await transport.dispatch(
    [
      failed({ id: 'm1', type: 'Sales.PlaceOrder', queue: 'Sales', endpoint: 'Sales', error: new Error('boom'), at: '2026-01-01T10:00:00Z' }),
      failed({ id: 'm2', type: 'Sales.CancelOrder', queue: 'Sales', endpoint: 'Sales', error: timeout, at: '2026-01-01T11:00:00Z' }),
      failed({ id: 'm3', type: 'Billing.Charge', queue: 'Billing', endpoint: 'Billing', error: new Error('card declined'), at: '2026-01-01T12:00:00Z' }),
      failed({ id: 'm4', type: 'Sales.PlaceOrder', queue: 'Gone', endpoint: 'Sales', error: new Error('boom'), at: '2026-01-01T13:00:00Z' }),
    ].map((message) => ({ destination: 'error', message })),
  );
  return transport;
}

const ids = (page: { messages: { id: string }[] }) => page.messages.map((m) => m.id);

describe('failed messages API', () => {
  it('lists with filters on endpoint, type, exception text and time range, oldest first', async () => {
    const errors = failedMessages(await setup());
    expect(ids(await errors.list())).toEqual(['m1', 'm2', 'm3', 'm4']);
    expect(ids(await errors.list({ endpoint: 'Billing' }))).toEqual(['m3']);
    expect(ids(await errors.list({ messageType: 'Sales.PlaceOrder' }))).toEqual(['m1', 'm4']);
    expect(ids(await errors.list({ messageType: 'Sales.*' }))).toEqual(['m1', 'm2', 'm4']);
    expect(ids(await errors.list({ exception: 'etimedout' }))).toEqual(['m2']);
    expect(ids(await errors.list({ exception: 'TimeoutError' }))).toEqual(['m2']);
    expect(ids(await errors.list({ since: new Date('2026-01-01T11:00:00Z'), until: new Date('2026-01-01T13:00:00Z') }))).toEqual(['m2', 'm3']);
  });

  it('pages over the matching messages and reports the total', async () => {
    const errors = failedMessages(await setup(), { pageSize: 1 });
    const page = await errors.list({ messageType: 'Sales.*', offset: 1, limit: 1 });
    expect(page).toMatchObject({ total: 3, offset: 1, limit: 1 });
    expect(ids(page)).toEqual(['m2']);
    expect(ids(await errors.list({ offset: 4 }))).toEqual([]);
  });

  it('shows headers, body and exception of one message', async () => {
    const errors = failedMessages(await setup());
    const m = await errors.show('m2');
    expect(m).toMatchObject({
      id: 'm2',
      messageType: 'Sales.CancelOrder',
      failedQueue: 'Sales',
      endpoint: 'Sales',
      instance: 'host:1:a1',
      exceptionType: 'TimeoutError',
      exceptionMessage: 'connect ETIMEDOUT 10.0.0.1:443',
      immediateAttempts: 6,
      delayedRetries: 3,
      body: '{"id":"m2"}',
    });
    expect(m?.stack).toContain('TimeoutError');
    expect(m?.failedAt?.toISOString()).toBe('2026-01-01T11:00:00.000Z');
    expect(await errors.show('nope')).toBeUndefined();
  });

  it('retries to the failed queue with the original id, failure headers stripped and the retry recorded', async () => {
    const transport = await setup();
    const errors = failedMessages(transport, { now: () => new Date('2026-02-01T00:00:00Z') });
    expect(await errors.retry(['m1', 'm3'])).toEqual([
      { id: 'm1', status: 'retried', queues: ['Sales'] },
      { id: 'm3', status: 'retried', queues: ['Billing'] },
    ]);
    const [back] = await transport.admin!.peek('Sales', { offset: 0, limit: 10 });
    expect(back?.id).toBe('m1');
    expect(back?.body).toBe('{"id":"m1"}');
    expect(back?.headers['sy1-message-id']).toBe('m1');
    expect(Object.keys(back!.headers).filter((h) => h.startsWith('sy1-failure') || h.startsWith('sy1-retries') || h === FailureHeaders.FirstFailureAt)).toEqual([]);
    expect(back?.headers[FailureHeaders.RetriedAt]).toBe('2026-02-01T00:00:00.000Z');
    expect(back?.headers[FailureHeaders.RetryCount]).toBe('1');
    expect(ids(await errors.list())).toEqual(['m2', 'm4']);
  });

  it('is idempotent: retrying an id again reports not-found and sends no second copy', async () => {
    const transport = await setup();
    const errors = failedMessages(transport);
    await errors.retry(['m1']);
    expect(await errors.retry(['m1', 'm1'])).toEqual([{ id: 'm1', status: 'not-found' }]);
    expect(await transport.admin!.depth('Sales')).toBe(1);
  });

  it('keeps the message and names the queue when its failed queue no longer exists', async () => {
    const transport = await setup();
    const errors = failedMessages(transport);
    const [outcome] = await errors.retry(['m4']);
    expect(outcome?.status).toBe('failed');
    if (outcome?.status !== 'failed') return;
    expect(outcome.queue).toBe('Gone');
    expect(isSwitchyardError(outcome.error, 'SY_ERR_QUEUE_NOT_FOUND')).toBe(true);
    expect(outcome.error.message).toContain('Gone');
    expect(ids(await errors.list())).toContain('m4');
  });

  it('retries everything matching a filter, and only that', async () => {
    const transport = await setup();
    const errors = failedMessages(transport);
    const outcomes = await errors.retryAll({ endpoint: 'Sales', exception: 'boom' });
    expect(outcomes.map((o) => `${o.id}:${o.status}`)).toEqual(['m1:retried', 'm4:failed']);
    expect(ids(await errors.list())).toEqual(['m2', 'm3', 'm4']);
  });

  it('deletes, and archives to a queue that can be listed and retried from', async () => {
    const transport = await setup();
    const errors = failedMessages(transport);
    expect(await errors.delete(['m1', 'x'])).toEqual([
      { id: 'm1', status: 'deleted' },
      { id: 'x', status: 'not-found' },
    ]);
    expect(await errors.archive(['m2'])).toEqual([{ id: 'm2', status: 'archived' }]);
    expect(ids(await errors.list())).toEqual(['m3', 'm4']);
    const archive = failedMessages(transport, { errorQueue: errors.archiveQueue });
    const archived = await archive.show('m2');
    expect(archived?.headers[FailureHeaders.ArchivedAt]).toBeDefined();
    expect(await archive.retry(['m2'])).toEqual([{ id: 'm2', status: 'retried', queues: ['Sales'] }]);
  });

  it('lists nothing when the error queue does not exist yet, and says which queues exist when asked for one message', async () => {
    const transport = memoryTransport();
    await transport.createQueue('Sales');
    expect(await failedMessages(transport, { errorQueue: 'errors' }).list()).toEqual({ messages: [], total: 0, offset: 0, limit: 50 });
    await expect(failedMessages(transport, { errorQueue: 'errors' }).show('m1')).rejects.toThrow(/error queue errors does not exist.*Sales/);
    expect(await transport.queueExists('errors')).toBe(false);
  });
});
