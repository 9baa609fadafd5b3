/**
 * The docs' examples run as written: every ```ts block of these pages is a program that imports
 * `switchyard` as a user would and checks what the page says with node:assert. A block that
 * needs a package the project does not install (zod, valibot) says so on its first line and is
 * only listed, not run.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const repo = path.resolve('.');
const PAGES = ['docs/memory.md', 'docs/schemas.md', 'docs/shutdown.md'];
const SUBPATHS: Record<string, string> = {
  switchyard: 'src/index.ts',
  'switchyard/memory': 'src/memory/index.ts',
  'switchyard/sqlite': 'src/sqlite/index.ts',
  'switchyard/testing': 'src/testing/index.ts',
};

mkdirSync(path.join(repo, '.tmp'), { recursive: true });
// Inside the repository (gitignored), so tsx resolves the sources' own dependencies.
const work = mkdtempSync(path.join(repo, '.tmp', 'docs-examples-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

interface Example {
  page: string;
  line: number;
  code: string;
}

function examples(page: string): Example[] {
  const text = readFileSync(path.join(repo, page), 'utf8');
  return [...text.matchAll(/^```ts\n([\s\S]*?)^```$/gm)].map((m) => ({ page, line: text.slice(0, m.index).split('\n').length, code: m[1]! }));
}

/** Points `from 'switchyard...'` at the sources. */
function asProgram(code: string): string {
  return code.replace(/from '(switchyard(?:\/[a-z]+)?)'/g, (whole, specifier: string) => {
    const target = SUBPATHS[specifier];
    if (!target) throw new Error(`the example imports ${specifier}, which this test does not map`);
    return `from '${path.join(repo, target)}'`;
  });
}

function run(file: string): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', file], { cwd: repo, timeout: 30_000 }, (error, stdout, stderr) =>
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, output: stdout + stderr }),
    );
  });
}

describe('docs examples', () => {
  const programs = PAGES.flatMap(examples)
    .filter((example) => !example.code.startsWith('// Not run'))
    .map((example) => {
      const file = path.join(work, `${path.basename(example.page, '.md')}-${example.line}.ts`);
      writeFileSync(file, asProgram(example.code));
      return file;
    });

  it('type-check (strict, as a user compiles them)', async () => {
    const tsc = path.join(repo, 'node_modules/typescript/bin/tsc');
    const options = ['--noEmit', '--strict', '--target', 'ES2022', '--module', 'NodeNext', '--moduleResolution', 'NodeNext', '--allowImportingTsExtensions', '--skipLibCheck', '--types', 'node'];
    const result = await new Promise<{ code: number; output: string }>((resolve) =>
      execFile(process.execPath, [tsc, ...options, ...programs], { cwd: repo, timeout: 60_000 }, (error, stdout, stderr) =>
        resolve({ code: error ? 1 : 0, output: stdout + stderr }),
      ),
    );
    expect(result.output).toBe('');
    expect(result.code).toBe(0);
  }, 60_000);

  for (const page of PAGES) {
    const blocks = examples(page);
    it(`${page} has runnable examples`, () => {
      expect(blocks.filter((b) => !b.code.startsWith('// Not run')).length).toBeGreaterThan(0);
    });
    for (const example of blocks) {
      const title = `${page}:${example.line}`;
      if (example.code.startsWith('// Not run')) {
        it.skip(`${title} (${example.code.split('\n')[0]!.replace('// ', '')})`, () => undefined);
        continue;
      }
      it(`${title} runs`, async () => {
        const result = await run(path.join(work, `${path.basename(page, '.md')}-${example.line}.ts`));
        expect(result.code, result.output).toBe(0);
      }, 40_000);
    }
  }
});
