/**
 * A missing optional peer dependency (amqplib, pg, ioredis) is a coded error naming the package
 * to install, not Node's ERR_MODULE_NOT_FOUND. (The packed-package test imports the real
 * subpaths in an app that has none of them installed: test/package/packed.test.ts.)
 */
import { describe, expect, it } from 'vitest';
import { ErrorCodes } from '../../src/index.js';
import { loadPeerDependency } from '../../src/core/peer-dependency.js';

describe('loadPeerDependency', () => {
  it('names the package to install and the adapter that needs it', () => {
    let thrown: { code?: string; message?: string; cause?: unknown } | undefined;
    try {
      loadPeerDependency('switchyard-test-no-such-package', 'switchyard/example');
    } catch (error) {
      thrown = error as typeof thrown;
    }
    expect(thrown?.code).toBe(ErrorCodes.PACKAGE_MISSING);
    expect(thrown?.message).toContain('switchyard/example needs the package switchyard-test-no-such-package');
    expect(thrown?.message).toContain('npm install switchyard-test-no-such-package');
    expect((thrown?.cause as { code?: string }).code).toBe('MODULE_NOT_FOUND');
  });

  it('keeps the original error when the package is there but one of its own modules is missing', () => {
    const broken = Object.assign(new Error("Cannot find module './lib/inner' (required from pg)"), { code: 'MODULE_NOT_FOUND' });
    expect(() =>
      loadPeerDependency('pg', 'switchyard/postgres', () => {
        throw broken;
      }),
    ).toThrow(broken);
  });

  it('returns the installed package', () => {
    const amqp = loadPeerDependency<typeof import('amqplib')>('amqplib', 'switchyard/rabbitmq');
    expect(typeof amqp.connect).toBe('function');
  });
});
