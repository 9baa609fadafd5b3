/** The docs/observability.md example runs as a program and prints the spans and metrics it promises. */
import { execFile } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { nodeScript } from '../../src/testing/node-script.js';

describe('the console-exporter example', () => {
  it('prints the send, process and handler spans and the message metrics', async () => {
    const { execArgv, script } = nodeScript('./fixtures/console-example.ts', import.meta.url);
    const { stdout, stderr } = await new Promise<{ stdout: string; stderr: string }>((resolve, reject) =>
      execFile(process.execPath, [...execArgv, script], { timeout: 60_000 }, (error, out, err) => (error ? reject(Object.assign(error, { stderr: err })) : resolve({ stdout: out, stderr: err }))),
    );
    expect(stderr).toBe('');
    for (const span of ["name: 'send Sales'", "name: 'process Sales'", "name: 'handle Sales.PlaceOrder'"]) expect(stdout).toContain(span);
    expect(stdout).toContain("'messaging.destination.name': 'Sales'");
    for (const metric of ['messaging.process.duration', 'messaging.client.sent.messages', 'messaging.client.consumed.messages', 'switchyard.message.critical_time']) {
      expect(stdout).toContain(metric);
    }
    expect(stdout).toMatch(/order placed messageId=[0-9a-f-]{36} type=Sales.PlaceOrder endpoint=Sales traceId=[0-9a-f]{32} orderId=o-1/);
  });
});
