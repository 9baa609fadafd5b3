import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ErrorCodes } from '../../src/core/errors.js';

describe('error catalogue', () => {
  const doc = readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8');
  const documented = new Set([...doc.matchAll(/^\| `(SY_ERR_[A-Z_]+)` \|/gm)].map((m) => m[1]));
  const codes = new Set<string>(Object.values(ErrorCodes));

  it('documents every error code', () => {
    expect([...codes].filter((c) => !documented.has(c))).toEqual([]);
  });

  it('documents no code that no longer exists', () => {
    expect([...documented].filter((c) => !codes.has(c!))).toEqual([]);
  });

  it('never gives two names the same code', () => {
    expect(codes.size).toBe(Object.keys(ErrorCodes).length);
  });
});
