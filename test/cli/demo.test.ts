/**
 * The demos as a new user runs them: they leave no temporary folder behind (on success, on
 * failure, on Ctrl-C), and the distributor demo shows the distributor at work while it runs.
 * Each demo process gets a private TMPDIR, so "nothing left" is checked exactly.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { inDemoFolder } from '../../src/cli/demos/processes.js';
import { waitFor } from '../../src/testing/wait.js';
import { repoRoot } from '../recoverability/fixtures/bus.js';

const privateDirs: string[] = [];
afterEach(() => {
  for (const dir of privateDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

interface DemoProcess {
  child: ChildProcess;
  output(): string;
  exited: Promise<number | null>;
}

function runDemo(args: string[], tmp: string): DemoProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(repoRoot, 'src/cli/main.ts'), 'demo', ...args], { cwd: repoRoot, env: { ...process.env, TMPDIR: tmp } });
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code, signal) => resolve(code ?? (signal ? -1 : null))));
  return { child, output: () => output, exited };
}

/** What the demo left in its TMPDIR (tsx, which runs the CLI from source here, keeps its cache there). */
const leftIn = (tmp: string) => readdirSync(tmp).filter((name) => !name.startsWith('tsx-'));

function privateTmp(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'sy-demo-test-'));
  privateDirs.push(dir);
  return dir;
}

/** Processes whose command line mentions `dir` (the demo's role processes carry its database path). */
function processesUsing(dir: string): number[] {
  return readdirSync('/proc')
    .filter((name) => /^\d+$/.test(name))
    .filter((pid) => {
      try {
        return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(dir);
      } catch {
        return false;
      }
    })
    .map(Number);
}

describe('the demos', () => {
  it('remove their temporary folder after a run that succeeded', async () => {
    const tmp = privateTmp();
    const demo = runDemo(['orders'], tmp);
    expect(await demo.exited, demo.output()).toBe(0);
    expect(demo.output()).toContain('20/20 orders accepted');
    expect(leftIn(tmp)).toEqual([]);
  }, 60_000);

  it('show the distributor at work while it runs, and on Ctrl-C stop every process and remove the folder', async () => {
    const tmp = privateTmp();
    const demo = runDemo(['distributor'], tmp);
    await waitFor(() => /distributor: forwarded \d+, \d+ free slots? \| Shipping@w1 got \d+, ready \d+ \| Shipping@w2 got/.test(demo.output()), {
      timeoutMs: 30_000,
      what: 'a live distributor line with per-worker counts',
    });
    const folder = readdirSync(tmp).find((name) => name.startsWith('switchyard-demo-'));
    expect(folder).toBeDefined();
    demo.child.kill('SIGINT');
    expect(await demo.exited).toBe(130);
    expect(demo.output()).toContain('SIGINT: stopping');
    expect(leftIn(tmp)).toEqual([]);
    await waitFor(() => processesUsing(path.join(tmp, folder!)).length === 0, { timeoutMs: 10_000, what: 'no demo process left running' });
  }, 60_000);

  it('remove their folder and stop their processes when the demo fails', async () => {
    let folder = '';
    let child: ChildProcess | undefined;
    await expect(
      inDemoFolder(async (demo) => {
        folder = demo.path;
        child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)']);
        demo.track(child);
        throw new Error('the demo failed');
      }),
    ).rejects.toThrow('the demo failed');
    expect(existsSync(folder)).toBe(false);
    expect(child!.exitCode !== null || child!.signalCode !== null).toBe(true);
    expect(process.listenerCount('SIGINT')).toBe(0);
  });
});
