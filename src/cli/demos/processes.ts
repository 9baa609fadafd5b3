/**
 * Demo processes: each role runs as `switchyard demo-role <scenario> <role> ...` and reports to
 * the parent with one JSON object per stdout line.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { nodeScript } from '../../testing/node-script.js';

export type Report = Record<string, unknown>;

export interface RoleProcess {
  readonly name: string;
  readonly child: ChildProcess;
  /** Resolves with the first report matching `predicate`. */
  waitFor(predicate: (report: Report) => boolean): Promise<Report>;
  onReport(listener: (report: Report) => void): void;
  /** Graceful stop (SIGTERM), resolved when the process exits. */
  stop(): Promise<void>;
  exited: Promise<number | null>;
}

// The CLI entry: compiled main.js, or main.ts through tsx when run from source (tests).
const main = nodeScript('../main.ts', import.meta.url);
const nodeArgs = [...main.execArgv, main.script];

export interface DemoFolder {
  /** The temporary folder (the demo's SQLite files live here). */
  readonly path: string;
  /** Starts a role process that is stopped when the demo ends, however it ends. */
  spawn(scenario: string, role: string, args: string[], name?: string): RoleProcess;
  /** Another child process of the demo, stopped the same way. */
  track(child: ChildProcess): void;
}

function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  return exited;
}

/**
 * Runs a demo in a temporary folder and leaves nothing behind: on success, on failure and on
 * Ctrl-C or SIGTERM its processes are stopped and the folder is removed (after a signal the demo
 * then exits with 130 or 143; a second Ctrl-C exits at once).
 */
export async function inDemoFolder<T>(run: (folder: DemoFolder) => Promise<T>, prefix = 'switchyard-demo-'): Promise<T> {
  const folder = mkdtempSync(path.join(tmpdir(), prefix));
  const children = new Set<ChildProcess>();
  const cleanUp = async () => {
    await Promise.all([...children].map(stopChild));
    rmSync(folder, { recursive: true, force: true });
  };
  const interrupted = (signal: NodeJS.Signals) => {
    process.stderr.write(`\nswitchyard demo: ${signal}: stopping the demo's processes and removing ${folder}\n`);
    void cleanUp().finally(() => process.exit(signal === 'SIGINT' ? 130 : 143));
  };
  process.once('SIGINT', interrupted);
  process.once('SIGTERM', interrupted);
  const track = (child: ChildProcess) => void children.add(child);
  try {
    return await run({
      path: folder,
      track,
      spawn: (scenario, role, args, name) => {
        const started = spawnRole(scenario, role, args, name);
        track(started.child);
        return started;
      },
    });
  } finally {
    process.off('SIGINT', interrupted);
    process.off('SIGTERM', interrupted);
    await cleanUp();
  }
}

export function spawnRole(scenario: string, role: string, args: string[], name = role): RoleProcess {
  const child = spawn(process.execPath, [...nodeArgs, 'demo-role', scenario, role, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  const listeners = new Set<(report: Report) => void>();
  createInterface({ input: child.stdout! }).on('line', (line) => {
    let report: Report;
    try {
      report = JSON.parse(line) as Report;
    } catch {
      process.stderr.write(`[${name}] ${line}\n`);
      return;
    }
    for (const listener of [...listeners]) listener(report);
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return {
    name,
    child,
    exited,
    onReport: (listener) => void listeners.add(listener),
    waitFor: (predicate) =>
      new Promise((resolve, reject) => {
        const listener = (report: Report) => {
          if (!predicate(report)) return;
          listeners.delete(listener);
          resolve(report);
        };
        listeners.add(listener);
        void exited.then((code) => reject(new Error(`${name} exited (code ${code}) before reporting what the demo waited for`)));
      }),
    stop: async () => {
      if (child.exitCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

/** Used by roles: one JSON line to the parent. */
export function report(value: Report): void {
  process.stdout.write(JSON.stringify(value) + '\n');
}
