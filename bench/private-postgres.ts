/**
 * A private PostgreSQL server for the 100-replica bench: 100 replica processes with one
 * connection each, plus 100 baseline LISTEN connections, do not fit the shared server's
 * max_connections (100), and its settings are not ours to change. This one has its own data
 * directory, port and socket directory in a temp folder, and stops (fast) with `stop()`, or when
 * the bench process exits. initdb refuses to run as root, so as root it runs as `postgres`.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { chownSync, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';

export interface PrivatePostgres {
  readonly url: string;
  stop(): void;
}

const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });

/** Undefined when this machine has no initdb/pg_ctl. */
export async function startPrivatePostgres(maxConnections: number): Promise<PrivatePostgres | undefined> {
  if (spawnSync('pg_ctl', ['--version']).status !== 0) return undefined;
  const dir = mkdtempSync(path.join(tmpdir(), 'sy-bench-pg-'));
  const data = path.join(dir, 'data');
  const asRoot = process.getuid?.() === 0;
  const run = (args: string[]) => {
    const [cmd, ...rest] = asRoot ? ['runuser', '-u', 'postgres', '--', ...args] : args;
    execFileSync(cmd!, rest, { stdio: 'ignore' });
  };
  if (asRoot) {
    const id = (flag: string) => Number(execFileSync('id', [flag, 'postgres']).toString());
    chownSync(dir, id('-u'), id('-g'));
  }
  const port = await freePort();
  run(['initdb', '-D', data, '-A', 'trust', '-U', 'postgres', '--no-sync']);
  const settings = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c max_connections=${maxConnections}`;
  run(['pg_ctl', '-D', data, '-o', settings, '-l', path.join(dir, 'log'), '-w', 'start']);
  let stopped = false;
  const stop = () => {
    if (stopped) return;
    stopped = true;
    try {
      run(['pg_ctl', '-D', data, '-m', 'immediate', '-w', 'stop']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
  process.once('exit', stop);
  return { url: `postgres://postgres@127.0.0.1:${port}/postgres`, stop };
}
