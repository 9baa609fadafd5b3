import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const root = path.resolve('src');
const technologies = ['sqlite', 'rabbitmq', 'postgres', 'redis', 'memory', 'cli', 'opentelemetry'];
const drivers = ['better-sqlite3', 'amqplib', 'pg', 'ioredis', 'commander', '@opentelemetry/api'];

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const full = path.join(dir, name);
    return statSync(full).isDirectory() ? files(full) : full.endsWith('.ts') ? [full] : [];
  });
}

function imports(file: string): string[] {
  return [...readFileSync(file, 'utf8').matchAll(/^\s*(?:import|export)[^'"]*from\s+'([^']+)'/gm)].map((m) => m[1]!);
}

/** Which top-level folder of src/ an import lands in, or the package name. */
function target(file: string, specifier: string): string {
  if (!specifier.startsWith('.')) return specifier;
  return path.relative(root, path.resolve(path.dirname(file), specifier)).split(path.sep)[0]!;
}

describe('layering', () => {
  it('keeps core free of technologies, drivers and file or network I/O', () => {
    const offending = files(path.join(root, 'core')).flatMap((file) =>
      imports(file)
        .filter((s) => [...technologies, ...drivers, 'node:fs', 'node:net', 'node:child_process'].includes(target(file, s)))
        .map((s) => `${path.relative(root, file)} imports ${s}`),
    );
    expect(offending).toEqual([]);
  });

  it('keeps capability folders free of technology folders and drivers', () => {
    const capabilities = ['endpoint', 'pubsub', 'scaleout', 'recoverability', 'datasets', 'health'];
    const offending = capabilities.flatMap((folder) => {
      const dir = path.join(root, folder);
      return statSync(dir, { throwIfNoEntry: false })
        ? files(dir).flatMap((file) =>
            imports(file)
              .filter((s) => [...technologies, ...drivers].includes(target(file, s)))
              .map((s) => `${path.relative(root, file)} imports ${s}`),
          )
        : [];
    });
    expect(offending).toEqual([]);
  });

  it('lets only src/opentelemetry import OpenTelemetry, so an application without it loads none of it', () => {
    const offending = files(root)
      .filter((file) => !file.startsWith(path.join(root, 'opentelemetry') + path.sep))
      .flatMap((file) => imports(file).filter((s) => s.startsWith('@opentelemetry/')).map((s) => `${path.relative(root, file)} imports ${s}`));
    expect(offending).toEqual([]);
  });

  it('has the core read time only through its clock seam (src/core/clock.ts), so the test kit can run it on virtual time', () => {
    const core = ['core', 'endpoint', 'pubsub', 'scaleout', 'recoverability', 'datasets', 'outbox'];
    const offending = core.flatMap((folder) =>
      files(path.join(root, folder))
        .filter((file) => path.relative(root, file) !== path.join('core', 'clock.ts'))
        .flatMap((file) =>
          readFileSync(file, 'utf8')
            .split('\n')
            .map((line, i) => ({ line, at: `${path.relative(root, file)}:${i + 1}` }))
            .filter(({ line }) => !/^\s*(\/\/|\*)/.test(line) && /\bDate\.now\(|new Date\(\s*\)/.test(line))
            .map(({ at, line }) => `${at}: ${line.trim()}`),
        ),
    );
    expect(offending).toEqual([]);
  });
});
