/**
 * `npm run bench [-- --json] [-- --only <prefix>]`. Runs every suite in bench/suites/ in one
 * process on this machine, so each result and its baseline share the same conditions. The
 * script compiles the benchmarks and the code they load with tsc (into .bench/) and runs the
 * JavaScript: the bus is measured as tsc emits it, as users run it, not as tsx compiles it.
 */
import { readdir } from 'node:fs/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import path from 'node:path';
import type { BenchResult, BenchSuite } from './types.js';

const args = process.argv.slice(2);
const json = args.includes('--json');
const onlyIndex = args.indexOf('--only');
const prefix = onlyIndex >= 0 ? args[onlyIndex + 1] ?? '' : '';
const only = (name: string) => name.startsWith(prefix);
const log = (line: string) => {
  if (!json) console.log(line);
  else process.stderr.write(line + '\n');
};

// Compiled (.bench/bench/run.js, what `npm run bench` runs) or from sources through tsx.
const extension = path.extname(fileURLToPath(import.meta.url));
const dir = path.join(path.dirname(fileURLToPath(import.meta.url)), 'suites');
const files = (await readdir(dir)).filter((f) => f.endsWith(extension)).sort();
const results: BenchResult[] = [];
for (const file of files) {
  const suite = (await import(pathToFileURL(path.join(dir, file)).href)).default as BenchSuite;
  if (!suite.names.some(only)) continue;
  log(`# ${file}`);
  results.push(...(await suite.run({ only, log })));
}

if (json) {
  console.log(JSON.stringify({ results }));
} else {
  const fmt = (n: number | null) => (n === null ? '-' : n >= 100 ? n.toFixed(0) : n.toFixed(2));
  console.log('');
  console.log(['name', 'transport', 'messages', 'msgs/s', 'p50 ms', 'p99 ms', 'baseline', 'baseline msgs/s', 'ratio'].join('\t'));
  for (const r of results) {
    console.log([r.name, r.transport, r.messages, fmt(r.msgsPerSec), fmt(r.p50Ms), fmt(r.p99Ms), r.baseline, fmt(r.baselineMsgsPerSec), r.ratio.toFixed(2)].join('\t'));
  }
}
process.exit(0);
