/**
 * `switchyard demo datasets`: the seed's example. Three web-server processes each cache prices
 * from the `prices` dataset (SQLite in a temp folder, no server needed). A price change reaches
 * all three and the demo prints when each applied it; then a staged change switches all three at
 * one version, and a staged typo is rejected by the servers so nobody switches.
 */
import { fork, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { wallNow } from '../../core/clock.js';
import { openDataset } from '../../datasets/index.js';
import { sqliteDatasetStore } from '../../sqlite/dataset-store.js';
import { nodeScript } from '../../testing/node-script.js';
import type { WebServerMessage } from './datasets-webserver.js';
import { inDemoFolder, type DemoFolder } from './processes.js';

interface WebServer {
  name: string;
  child: ChildProcess;
  port: number;
  applied: Extract<WebServerMessage, { type: 'applied' }>[];
}

// Compiled: datasets-webserver.js next to this file. From source (tests): the .ts file through tsx.
const server = nodeScript('./datasets-webserver.ts', import.meta.url);

function startServer(dbPath: string, name: string, folder: DemoFolder): Promise<WebServer> {
  const child = fork(server.script, [dbPath, name], {
    execPath: process.execPath,
    execArgv: [...server.execArgv],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  folder.track(child);
  const applied: WebServer['applied'] = [];
  return new Promise((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`${name} exited with code ${code} before it was ready`)));
    child.on('message', (raw) => {
      const m = raw as WebServerMessage;
      if (m.type === 'applied') applied.push(m);
      else if (m.type === 'ready') {
        console.log(`  ${name}: listening on http://127.0.0.1:${m.port}, caching ${m.prices} prices at version ${m.version}`);
        resolve({ name, child, port: m.port, applied });
      }
    });
  });
}

async function waitApplied(servers: WebServer[], version: number, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  while (!servers.every((s) => s.applied.some((a) => a.version >= version))) {
    if (Date.now() > deadline) throw new Error(`not every web server applied version ${version} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 2));
  }
  return servers.map((s) => s.applied.find((a) => a.version >= version)!);
}

async function askPrices(servers: WebServer[], sku: string): Promise<string> {
  const answers = await Promise.all(
    servers.map(async (s) => {
      const res = await fetch(`http://127.0.0.1:${s.port}/price/${encodeURIComponent(sku)}`);
      const body = (await res.json()) as { price: number | null; version: number };
      return `${s.name}=${body.price} (v${body.version})`;
    }),
  );
  return answers.join(', ');
}

export async function runDatasetsDemo(argv: string[]): Promise<void> {
  void argv;
  await inDemoFolder(runIn, 'switchyard-demo-datasets-');
}

async function runIn(folder: DemoFolder): Promise<void> {
  const dbPath = path.join(folder.path, 'shop.db');
  console.log(`Datasets demo: three web servers cache prices from one dataset (SQLite at ${dbPath}).`);
  const store = sqliteDatasetStore({ path: dbPath });
  const prices = await openDataset<number>('prices', { store, leaseMs: 3000 });
  const servers: WebServer[] = [];
  try {
    await prices.batch([{ key: 'sku-1', value: 10 }, { key: 'sku-2', value: 25 }, { key: 'sku-3', value: 7 }]);
    console.log('\n1. Start three web servers (separate processes):');
    servers.push(...(await Promise.all(['web-1', 'web-2', 'web-3'].map((n) => startServer(dbPath, n, folder)))));
    console.log(`   GET /price/sku-1 -> ${await askPrices(servers, 'sku-1')}`);

    console.log('\n2. Change one price; every server applies it (no queue, no cache-busting message):');
    const t0 = wallNow();
    const version = await prices.set('sku-1', 12);
    for (const a of await waitApplied(servers, version)) {
      console.log(`   ${a.name} applied version ${a.version} (${a.changes.join(', ')}) after ${(a.at - t0).toFixed(1)} ms`);
    }
    const converged = await prices.waitForVersion(version, { timeoutMs: 5000 });
    console.log(`   waitForVersion(${version}): converged=${converged.converged}, ${converged.converged ? converged.replicas.length : 0} live replicas (3 servers + this process)`);
    console.log(`   GET /price/sku-1 -> ${await askPrices(servers, 'sku-1')}`);

    console.log('\n3. Stage a change, then activate it: all servers switch at one version:');
    const staged = await prices.stage([{ key: 'sku-2', value: 30 }, { key: 'sku-3', value: 8 }], { timeoutMs: 3000 });
    if (!staged.accepted) throw new Error(`the demo's stage was not accepted: ${JSON.stringify(staged)}`);
    console.log(`   staged at version ${staged.stage.version}; accepted by ${staged.voters.length} replicas`);
    const t1 = wallNow();
    const activated = await prices.activate(staged.stage);
    for (const a of await waitApplied(servers, activated)) {
      console.log(`   ${a.name} switched at version ${a.version} (${a.kind}: ${a.changes.join(', ')}) after ${(a.at - t1).toFixed(1)} ms`);
    }
    console.log(`   GET /price/sku-2 -> ${await askPrices(servers, 'sku-2')}`);

    console.log('\n4. Stage a typo (sku-3 = 8000): the servers reject it, it is aborted, nobody switches:');
    const typo = await prices.stage([{ key: 'sku-3', value: 8000 }], { timeoutMs: 3000 });
    if (typo.accepted) throw new Error('the typo was accepted; the servers should have rejected it');
    console.log(`   aborted at version ${typo.abortVersion}: ${typo.rejected.map((r) => r.reason).join('; ')}`);
    await prices.waitForVersion(typo.abortVersion, { timeoutMs: 5000 }); // an abort changes no entries, so no onChange
    console.log(`   GET /price/sku-3 -> ${await askPrices(servers, 'sku-3')}`);

    const status = await prices.status();
    console.log(`\nstatus(): head ${status.head}; ${status.replicas.map((r) => `${r.instance.split(':').pop()} applied ${r.applied}${r.live ? '' : ' (departed)'}`).join(', ')}`);
  } finally {
    for (const s of servers) if (s.child.connected) s.child.disconnect();
    await Promise.all(servers.map((s) => (s.child.exitCode === null ? new Promise((r) => s.child.once('exit', r)) : undefined)));
    await prices.close();
    await store.close();
  }
}
