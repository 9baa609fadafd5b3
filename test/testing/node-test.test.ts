/** The test kit's plain values read as well under node:test as under vitest: run a node:test file. */
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';

const file = new URL('./fixtures/node-test-bus.ts', import.meta.url).pathname;
const run = (env: Record<string, string> = {}) =>
  spawnSync(process.execPath, ['--import', 'tsx', '--test', '--test-reporter=tap', file], { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 60_000 });

describe('the test kit under node:test', () => {
  it('passes a node:test file that uses it', () => {
    const result = run();
    expect(result.stdout).toMatch(/# pass 1/);
    expect(result.status).toBe(0);
  });

  it('reports a failing assertion on its values as a node:test failure', () => {
    const result = run({ SY_NODE_TEST_FAIL: '1' });
    expect(result.stdout).toMatch(/# fail 1/);
    expect(result.stdout).toMatch(/grace/);
    expect(result.status).toBe(1);
  });
});
