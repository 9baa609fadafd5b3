/**
 * Two builds of Switchyard on the sqlite.send load in one process, alternating which runs first:
 * how a change moved the cost per message (issue 17's "within 5% of before" was measured so).
 *   git worktree add /tmp/before <commit> && ln -s $PWD/node_modules /tmp/before/node_modules
 *   (cd /tmp/before && npx tsc -p tsconfig.bench.json) && npx tsc -p tsconfig.bench.json
 *   node bench/compare-builds.mjs /tmp/before/.bench .bench 10
 * 20,000 1 KB commands per round, batches of 100, concurrency 64, synchronous=FULL, WAL.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { resolve } from 'node:path';
const [beforeDir, mainDir, roundsArg] = process.argv.slice(2);
if (!beforeDir || !mainDir) throw new Error('usage: node bench/compare-builds.mjs <before .bench dir> <after .bench dir> [rounds]');
const trees = { before: resolve(beforeDir), main: resolve(mainDir) };
const mods = {};
for (const [k, dir] of Object.entries(trees)) {
  mods[k] = { index: await import(`${dir}/src/index.js`), sqlite: await import(`${dir}/src/sqlite/index.js`), load: await import(`${dir}/bench/load.js`) };
}
async function run(k, messages) {
  const { index, sqlite, load } = mods[k];
  const Ping = index.defineCommand('Bench.Ping');
  const dir = mkdtempSync(path.join(tmpdir(), 'sy-cmp-'));
  const counter = load.pingCounter(Ping, messages);
  const endpoint = index.createEndpoint({ name: 'Bench', transport: sqlite.sqliteTransport({ path: path.join(dir, 'b.db'), synchronous: 'full' }), routes: { 'Bench.*': 'Bench' }, concurrency: 64, logger: index.silentLogger, handlers: [counter.handler] });
  await endpoint.start();
  const c0 = process.cpuUsage(); const t0 = performance.now();
  await load.sendPings(endpoint, Ping, messages, { batch: 100 });
  await counter.finished;
  const t = performance.now() - t0; const c = process.cpuUsage(c0);
  await endpoint.stop(); rmSync(dir, { recursive: true, force: true });
  return { rate: messages / t * 1000, cpu: (c.user + c.system) / messages };
}
const med = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };
for (const k of ['before', 'main', 'before', 'main']) await run(k, 2000);
const R = { before: [], main: [] }; const rounds = +roundsArg || 10;
for (let i = 0; i < rounds; i++) {
  const order = i % 2 ? ['main', 'before'] : ['before', 'main'];
  for (const k of order) R[k].push(await run(k, 20000));
  console.log(`round ${i + 1}: before ${R.before.at(-1).rate.toFixed(0)}/s ${R.before.at(-1).cpu.toFixed(1)}µs, main ${R.main.at(-1).rate.toFixed(0)}/s ${R.main.at(-1).cpu.toFixed(1)}µs`);
}
const pr = R.main.map((m, i) => m.rate / R.before[i].rate), pc = R.main.map((m, i) => R.before[i].cpu / m.cpu);
console.log(`median msgs/s before ${med(R.before.map(r => r.rate)).toFixed(0)} main ${med(R.main.map(r => r.rate)).toFixed(0)}; paired throughput ratio median ${med(pr).toFixed(3)}; CPU/msg before ${med(R.before.map(r => r.cpu)).toFixed(1)} main ${med(R.main.map(r => r.cpu)).toFixed(1)} µs, paired ratio ${med(pc).toFixed(3)}`);
