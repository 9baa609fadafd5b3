/**
 * The bench's replica processes never outlive the bench: killed by SIGKILL (no hook runs; the
 * children see their IPC channel close), even while they are still starting, or dying of an
 * uncaught error (its exit hook kills them).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { nodeScript } from '../../src/testing/node-script.js';
import { waitFor } from '../../src/testing/wait.js';

const PARENT = nodeScript('./fixtures/fleet-parent.ts', import.meta.url);
const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** Running, and not a zombie waiting for a reaper (a container's init may never reap). */
function running(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.[0] !== 'Z';
  } catch {
    return false;
  }
}

async function startParent(how: 'wait' | 'throw' | 'early') {
  const dir = mkdtempSync(path.join(tmpdir(), 'sy-fleet-'));
  dirs.push(dir);
  const parent = spawn(process.execPath, [...PARENT.execArgv, PARENT.script, dir, '3', how], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  parent.stdout.on('data', (chunk: Buffer) => void (out += chunk.toString()));
  await waitFor(() => out.includes(']'), { timeoutMs: 30_000, what: 'the parent printed its children' });
  const pids = JSON.parse(out.slice(0, out.indexOf(']') + 1)) as number[];
  expect(pids).toHaveLength(3);
  if (how !== 'early') expect(pids.every(running)).toBe(true);
  return { parent, pids };
}

describe('bench replica processes die with their parent', () => {
  it('when the parent is killed with SIGKILL', async () => {
    const { parent, pids } = await startParent('wait');
    parent.kill('SIGKILL');
    await waitFor(() => pids.every((pid) => !running(pid)), { timeoutMs: 10_000, what: 'every child exited' });
  }, 40_000);

  it('when the parent is killed while they are still starting', async () => {
    const { parent, pids } = await startParent('early');
    await waitFor(() => parent.signalCode === 'SIGKILL', { timeoutMs: 10_000, what: 'the parent died' });
    await waitFor(() => pids.every((pid) => !running(pid)), { timeoutMs: 20_000, what: 'every child exited' });
  }, 40_000);

  it('when the parent dies of an uncaught error', async () => {
    const { parent, pids } = await startParent('throw');
    parent.kill('SIGUSR2');
    await waitFor(() => parent.exitCode !== null, { timeoutMs: 10_000, what: 'the parent died' });
    expect(parent.exitCode).not.toBe(0);
    await waitFor(() => pids.every((pid) => !running(pid)), { timeoutMs: 10_000, what: 'every child exited' });
  }, 40_000);
});
