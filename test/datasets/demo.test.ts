import { afterEach, describe, expect, it, vi } from 'vitest';
import { runDatasetsDemo } from '../../src/cli/demos/datasets.js';

describe('switchyard demo datasets', () => {
  afterEach(() => vi.restoreAllMocks());

  it('three web-server processes each apply the price change and report their convergence time', async () => {
    const lines: string[] = [];
    vi.spyOn(console, 'log').mockImplementation((line: unknown) => void lines.push(String(line)));
    await runDatasetsDemo([]);
    const out = lines.join('\n');
    for (const name of ['web-1', 'web-2', 'web-3']) {
      expect(out).toMatch(new RegExp(`${name} applied version 2 \\(sku-1=12\\) after \\d+\\.\\d ms`));
      expect(out).toMatch(new RegExp(`${name} switched at version 4 \\(activate: sku-2=30, sku-3=8\\)`));
    }
    expect(out).toContain('GET /price/sku-1 -> web-1=12 (v2), web-2=12 (v2), web-3=12 (v2)');
    expect(out).toMatch(/aborted at version 6: .*price above 1000/);
    expect(out).toContain('GET /price/sku-3 -> web-1=8 (v6), web-2=8 (v6), web-3=8 (v6)');
  });
});
