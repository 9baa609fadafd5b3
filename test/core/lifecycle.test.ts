import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createEndpoint, defineCommand, handle, lineLogger, silentLogger, type EndpointFeature, type Logger } from '../../src/index.js';
import { MemoryBroker, memoryTransport } from '../../src/memory/index.js';
import type { Transport } from '../../src/core/transport.js';
import { nodeScript } from '../../src/testing/node-script.js';
import { waitFor } from '../../src/testing/wait.js';

const Work = defineCommand<{ n: number }>('Lifecycle.Work');

/** A memory transport that records which of its methods were called, in order. */
function recording(broker: MemoryBroker, calls: string[], options: { leaseMs?: number } = {}): Transport {
  const inner = memoryTransport({ broker, ...options });
  return {
    ...inner,
    name: inner.name,
    capabilities: inner.capabilities,
    admin: inner.admin,
    open: () => (calls.push('open'), inner.open()),
    receive: (address, receiveOptions) => (calls.push('receive'), inner.receive(address, receiveOptions)),
    close: () => (calls.push('close'), inner.close()),
  };
}

function feature(name: string, calls: string[], fail?: 'setup' | 'start'): EndpointFeature {
  return {
    name,
    setup: async () => {
      calls.push(`${name}.setup`);
      if (fail === 'setup') throw new Error(`${name} cannot set up`);
    },
    start: async () => {
      calls.push(`${name}.start`);
      if (fail === 'start') throw new Error(`${name} cannot start`);
    },
    stopping: async () => void calls.push(`${name}.stopping`),
    stop: async () => void calls.push(`${name}.stop`),
  };
}

/** An endpoint on a recording transport with the given features. */
function recordedEndpoint(calls: string[], features: EndpointFeature[]) {
  return createEndpoint({
    name: 'Lifecycle',
    transport: recording(new MemoryBroker(), calls),
    logger: silentLogger,
    handlers: [handle(Work, () => undefined)],
    features,
  });
}

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

describe('endpoint lifecycle', () => {
  it('undoes a start whose feature start fails, in reverse, and never starts receiving', async () => {
    const calls: string[] = [];
    const endpoint = recordedEndpoint(calls, [feature('a', calls), feature('b', calls, 'start')]);
    await expect(endpoint.start()).rejects.toThrow('b cannot start');
    expect(endpoint.status).toBe('stopped');
    expect(calls).toEqual(['open', 'a.setup', 'b.setup', 'a.start', 'b.start', 'a.stopping', 'b.stop', 'a.stop', 'close']);
  });

  it('undoes only the setups that ran when a feature setup fails', async () => {
    const calls: string[] = [];
    const endpoint = recordedEndpoint(calls, [feature('a', calls), feature('b', calls, 'setup'), feature('c', calls)]);
    await expect(endpoint.start()).rejects.toThrow('b cannot set up');
    expect(calls).toEqual(['open', 'a.setup', 'b.setup', 'a.stop', 'close']);
  });

  it('stops in the documented order: stop receiving, features stopping, drain, features stop, close', async () => {
    const calls: string[] = [];
    const endpoint = recordedEndpoint(calls, [feature('a', calls), feature('b', calls)]);
    await endpoint.start();
    await endpoint.stop();
    const withoutReceives = calls.filter((c) => c !== 'receive');
    expect(withoutReceives).toEqual(['open', 'a.setup', 'b.setup', 'a.start', 'b.start', 'b.stopping', 'a.stopping', 'b.stop', 'a.stop', 'close']);
  });

  it('refuses start() after stop() with SY_ERR_NOT_RUNNING', async () => {
    const endpoint = createEndpoint({ name: 'Lifecycle', transport: memoryTransport({ broker: new MemoryBroker() }), logger: silentLogger, handlers: [handle(Work, () => undefined)] });
    await endpoint.start();
    await endpoint.stop();
    await expect(endpoint.start()).rejects.toMatchObject({ code: 'SY_ERR_NOT_RUNNING' });
  });

  it('a process whose endpoint failed to start exits by itself (nothing left running)', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'sy-lifecycle-'));
    dirs.push(dir);
    const child = nodeScript('./fixtures/failed-start.ts', import.meta.url);
    const proc = spawn(process.execPath, [...child.execArgv, child.script], {
      env: { ...process.env, SWITCHYARD_DB: path.join(dir, 'bus.db') },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((resolve) => proc.on('exit', resolve));
    try {
      const code = await Promise.race([exited, waitFor(() => false, { timeoutMs: 20_000, what: 'the process to exit' })]);
      expect(out).toContain('start failed: the feature cannot start');
      expect(code).toBe(0);
    } finally {
      proc.kill('SIGKILL');
    }
  });

  it('a forced stop returns after stopGraceMs though a handler ignores its signal, names it, and its message comes back by lease', async () => {
    const broker = new MemoryBroker();
    const lines: string[] = [];
    const logger: Logger = lineLogger((level, line) => void (level === 'error' && lines.push(line)));
    let release = () => {};
    const stuck = new Promise<void>((resolve) => (release = resolve));
    let startedHandling = false;
    const endpoint = createEndpoint({
      name: 'Lifecycle',
      transport: memoryTransport({ broker, leaseMs: 300 }),
      logger,
      stopGraceMs: 100,
      handlers: [
        handle(Work, async () => {
          startedHandling = true;
          await stuck; // ignores ctx.signal
        }),
      ],
    });
    await endpoint.start();
    await endpoint.sendLocal(Work, { n: 1 });
    await waitFor(() => startedHandling, { what: 'the handler to start' });
    const controller = new AbortController();
    controller.abort();
    await endpoint.stop({ signal: controller.signal });
    expect(lines.join('\n')).toMatch(/1 handler\(s\) still running 100 ms after the forced stop/);

    const handledAgain: number[] = [];
    const successor = createEndpoint({ name: 'Lifecycle', transport: memoryTransport({ broker }), logger: silentLogger, handlers: [handle(Work, (m) => void handledAgain.push(m.n))] });
    await successor.start();
    try {
      await waitFor(() => handledAgain.length === 1, { what: 'the abandoned message to come back after its lease' });
    } finally {
      release();
      await successor.stop();
    }
  });
});

describe('stopOnSignals', () => {
  it('stops gracefully on the first SIGTERM and forcefully on the second, and the process exits by itself', async () => {
    const child = nodeScript('./fixtures/signals.ts', import.meta.url);
    const proc = spawn(process.execPath, [...child.execArgv, child.script], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((resolve) => proc.on('exit', resolve));
    try {
      await waitFor(() => out.includes('handling'), { timeoutMs: 20_000, what: 'the handler to start' });
      proc.kill('SIGTERM');
      await waitFor(() => out.includes('stopping gracefully'), { what: 'the graceful stop to begin' });
      expect(out).not.toContain('all stopped');
      proc.kill('SIGTERM');
      const code = await Promise.race([exited, waitFor(() => false, { timeoutMs: 20_000, what: 'the process to exit' })]);
      expect(out).toContain('stopping forcefully');
      expect(out).toMatch(/1 handler\(s\) still running 200 ms after the forced stop/);
      expect(out).toContain('all stopped, 0 error(s)');
      expect(code).toBe(0);
    } finally {
      proc.kill('SIGKILL');
    }
  });
});
