import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseBody } from '../../src/core/envelope.js';
import { isSwitchyardError } from '../../src/core/errors.js';

/** True when a parsed JSON value holds a `__proto__` key, or a `constructor` object with a `prototype` key. */
function couldPoison(value: unknown): boolean {
  if (typeof value !== 'object' || value === null) return false;
  if (Array.isArray(value)) return value.some(couldPoison);
  return Object.entries(value).some(
    ([key, child]) =>
      key === '__proto__' || (key === 'constructor' && typeof child === 'object' && child !== null && Object.hasOwn(child, 'prototype')) || couldPoison(child),
  );
}

// Keys that matter here, mixed with arbitrary ones.
const key = fc.oneof(fc.constantFrom('constructor', 'prototype', '__proto__', 'name', 'toString'), fc.string());
const json = fc.letrec((tie) => ({
  value: fc.oneof({ depthSize: 'small' }, fc.jsonValue({ maxDepth: 1 }), tie('object'), fc.array(tie('value'), { maxLength: 3 })),
  object: fc.dictionary(key, tie('value'), { maxKeys: 4 }),
})).value;

describe('parseBody', () => {
  it('returns what JSON.parse returns for every body that cannot poison a prototype, and refuses the others', () => {
    fc.assert(
      fc.property(json, (value) => {
        const text = JSON.stringify(value);
        const plain: unknown = JSON.parse(text);
        if (!couldPoison(plain)) {
          expect(parseBody(text)).toEqual(plain);
          return;
        }
        let refused: unknown;
        try {
          parseBody(text);
        } catch (error) {
          refused = error;
        }
        expect(isSwitchyardError(refused, 'SY_ERR_MALFORMED_MESSAGE')).toBe(true);
      }),
      { numRuns: 500 },
    );
  });

  it('keeps constructor and prototype keys at any depth', () => {
    const text = '{"product":{"constructor":{"name":"Acme"}},"list":[{"prototype":1}],"constructor":"x"}';
    expect(parseBody(text)).toEqual({ product: { constructor: { name: 'Acme' } }, list: [{ prototype: 1 }], constructor: 'x' });
  });

  it('refuses __proto__ also when the key is spelt with unicode escapes', () => {
    expect(() => parseBody('{"a":{"\\u005f_proto__":{"polluted":true}}}')).toThrow(/__proto__/);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
});
