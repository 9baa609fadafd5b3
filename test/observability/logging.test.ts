/** Structured logs: every line about a message being handled carries its fields; errors go as Error objects. */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { consoleLogger, createEndpoint, defineCommand, handle, withFields, type Endpoint, type LogFields } from '../../src/index.js';
import { MemoryBroker, memoryTransport } from '../../src/memory/index.js';
import { waitFor } from '../../src/testing/wait.js';

const PlaceOrder = defineCommand<{ orderId: string; fail?: boolean }>('Sales.PlaceOrder');

interface Line {
  level: string;
  fields: LogFields;
  text: string;
}

/** Shaped like pino: methods that need their `this`, (fields, text) or (text). */
class RecordingLogger {
  readonly lines: Line[] = [];
  info(first: LogFields | string, text?: string) {
    this.write('info', first, text);
  }
  warn(first: LogFields | string, text?: string) {
    this.write('warn', first, text);
  }
  error(first: LogFields | string, text?: string) {
    this.write('error', first, text);
  }
  private write(level: string, first: LogFields | string, text?: string) {
    this.lines.push(typeof first === 'string' ? { level, fields: {}, text: first } : { level, fields: first, text: text ?? '' });
  }
}

const running: Endpoint[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((e) => e.stop()));
});

describe('structured logs', () => {
  it("gives handlers a logger whose lines carry the message id, type, endpoint and trace id, and logs a failure with the error object", async () => {
    const logger = new RecordingLogger();
    const seen: { id: string; traceparent: string }[] = [];
    const endpoint = createEndpoint({
      name: 'Sales',
      transport: memoryTransport({ broker: new MemoryBroker() }),
      logger,
      recoverability: { immediateRetries: 0, delayedRetries: { count: 0 } },
      handlers: [
        handle(PlaceOrder, ({ orderId, fail }, ctx) => {
          seen.push({ id: ctx.messageId, traceparent: ctx.headers.traceparent! });
          ctx.logger.info({ orderId }, 'placing the order');
          if (fail) throw new Error('card declined');
        }),
      ],
    });
    running.push(endpoint);
    await endpoint.start();
    await endpoint.sendLocal(PlaceOrder, { orderId: 'o-1' });
    await endpoint.sendLocal(PlaceOrder, { orderId: 'o-2', fail: true });
    await waitFor(() => logger.lines.some((l) => l.level === 'error'), { what: 'the failure logged' });

    const fieldsOf = (i: number) => ({ messageId: seen[i]!.id, type: 'Sales.PlaceOrder', endpoint: 'Sales', traceId: seen[i]!.traceparent.split('-')[1] });
    const placing = logger.lines.filter((l) => l.text === 'placing the order');
    expect(placing.map((l) => l.fields)).toEqual([
      { ...fieldsOf(0), orderId: 'o-1' },
      { ...fieldsOf(1), orderId: 'o-2' },
    ]);
    const failure = logger.lines.find((l) => l.level === 'error')!;
    expect(failure.fields).toMatchObject(fieldsOf(1));
    expect(failure.fields.err).toBeInstanceOf(Error);
    expect((failure.fields.err as Error).message).toBe('card declined');
    expect(failure.text).toMatch(/moved to error: card declined/);
  });

  it('withFields keeps a line\'s own fields over the bound ones and calls the logger as a method', () => {
    const logger = new RecordingLogger();
    const bound = withFields(logger, { endpoint: 'Sales', messageId: 'm-1' });
    bound.warn({ messageId: 'override', extra: 1 }, 'with fields');
    bound.info('text only');
    expect(logger.lines).toEqual([
      { level: 'warn', fields: { endpoint: 'Sales', messageId: 'override', extra: 1 }, text: 'with fields' },
      { level: 'info', fields: { endpoint: 'Sales', messageId: 'm-1' }, text: 'text only' },
    ]);
  });

  it('consoleLogger writes fields as key=value after the text and the error stack below it', () => {
    const write = vi.spyOn(console, 'error').mockImplementation(() => undefined);
    try {
      consoleLogger('Sales').error({ messageId: 'm-1', attempt: 2, err: new Error('boom') }, 'failed');
      const line = String(write.mock.calls[0]![0]);
      expect(line.split('\n')[0]).toBe('[switchyard] Sales: failed messageId=m-1 attempt=2');
      expect(line).toMatch(/\nError: boom\n\s+at /);
    } finally {
      write.mockRestore();
    }
  });
});
