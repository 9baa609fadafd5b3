/**
 * docs/testing.md runs as written: every `ts` block is a complete module (top-level await,
 * node:assert). Each is written to a temporary file with `switchyard` imports pointed at src/,
 * and imported; a failing assertion in the page fails its test here.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const page = readFileSync(new URL('../../docs/testing.md', import.meta.url), 'utf8');
const src = path.resolve('src');
const folder = mkdtempSync(path.join(tmpdir(), 'switchyard-docs-'));
afterAll(() => rmSync(folder, { recursive: true, force: true }));

/** Each block with the heading it is under. */
const examples = [...page.matchAll(/^## (.+)$|^```ts\n([\s\S]*?)^```$/gm)].reduce<{ heading: string; blocks: { heading: string; code: string }[] }>(
  (acc, m) => (m[1] !== undefined ? { ...acc, heading: m[1] } : { ...acc, blocks: [...acc.blocks, { heading: acc.heading, code: m[2]! }] }),
  { heading: 'intro', blocks: [] },
).blocks;

function runnable(code: string): string {
  return code
    .replace(/from 'switchyard\/testing'/g, `from '${pathToFileURL(path.join(src, 'testing/index.ts')).href}'`)
    .replace(/from 'switchyard\/sqlite'/g, `from '${pathToFileURL(path.join(src, 'sqlite/index.ts')).href}'`)
    .replace(/from 'switchyard'/g, `from '${pathToFileURL(path.join(src, 'index.ts')).href}'`);
}

describe('docs/testing.md', () => {
  it('has the examples it promises', () => {
    expect(examples.map((e) => e.heading)).toEqual(['Testing a handler', 'A cascade across endpoints', 'Retries and the error queue', 'Deferred messages and timeouts', 'Datasets on virtual time']);
  });

  it.each(examples.map((e, i) => [e.heading, i] as const))('runs the example under "%s"', async (_heading, i) => {
    const file = path.join(folder, `example-${i}.ts`);
    writeFileSync(file, runnable(examples[i]!.code));
    await import(pathToFileURL(file).href);
  });
});
