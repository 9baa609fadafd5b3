/**
 * The package as a new user gets it: `npm pack` from a clean copy of the sources (no dist/:
 * prepack must build), installed into a fresh app outside this repository, where none of the
 * optional peers (amqplib, pg, ioredis) and no @types/better-sqlite3 are installed.
 *
 * No network: the tarball's own dependencies (better-sqlite3 with its native build, commander)
 * are local file dependencies on this repository's node_modules, and npm runs with --offline.
 */
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const repo = path.resolve('.');
const modules = realpathSync(path.join(repo, 'node_modules'));
let work: string;
let app: string;
let installed: string;

function run(command: string, args: readonly string[], cwd: string): string {
  try {
    return execFileSync(command, args, { cwd, encoding: 'utf8', env: { ...process.env, npm_config_offline: 'true', npm_config_update_notifier: 'false' }, stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (error) {
    const e = error as { stdout?: string; stderr?: string };
    throw new Error(`${path.basename(command)} ${args.join(' ')} failed in ${cwd}:\n${e.stdout ?? ''}${e.stderr ?? ''}`);
  }
}

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const full = path.join(dir, name);
    return statSync(full).isDirectory() ? filesUnder(full) : [full];
  });
}

const APP = `
import { createEndpoint, defineCommand, handle, silentLogger, type Endpoint } from 'switchyard';
import { sqliteTransport, type SqliteOptions } from 'switchyard/sqlite';
import { testBus } from 'switchyard/testing';

const Ping = defineCommand<{ n: number }>('App.Ping');
const options: SqliteOptions = { path: './app.db' };
let handled!: (n: number) => void;
const received = new Promise<number>((resolve) => (handled = resolve));
const endpoint: Endpoint = createEndpoint({
  name: 'App',
  transport: sqliteTransport(options),
  logger: silentLogger,
  handlers: [handle(Ping, ({ n }) => handled(n))],
});
await endpoint.start();
await endpoint.sendLocal(Ping, { n: 41 });
const n = await received;
await endpoint.stop();
// Not a literal: the app does not use RabbitMQ, so it has neither amqplib nor its types.
const rabbitmq: string = 'switchyard/rabbitmq';
const missing = await import(rabbitmq).then(() => 'loaded', (e: { code?: string; message?: string }) => \`\${e.code}: \${e.message}\`);
const opentelemetry: string = 'switchyard/opentelemetry';
const missingOtel = await import(opentelemetry).then(() => 'loaded', (e: { code?: string; message?: string }) => \`\${e.code}: \${e.message}\`);
console.log(JSON.stringify({ handled: n + 1, testBus: typeof testBus, missing, missingOtel }));
`;

describe('the packed package', () => {
  beforeAll(() => {
    work = mkdtempSync(path.join(tmpdir(), 'switchyard-pack-'));
    // A clean clone: the sources and configuration, no dist/.
    const clone = path.join(work, 'clone');
    for (const entry of ['package.json', 'package-lock.json', 'tsconfig.json', 'tsconfig.build.json', 'README.md', 'LICENSE', 'src', 'docs']) {
      cpSync(path.join(repo, entry), path.join(clone, entry), { recursive: true });
    }
    symlinkSync(modules, path.join(clone, 'node_modules'));
    run('npm', ['pack', '--silent', '--pack-destination', work], clone);
    const tarball = readdirSync(work).find((name) => name.endsWith('.tgz'))!;

    app = path.join(work, 'app');
    cpSync(path.join(repo, 'test/package/fixtures/app-tsconfig.json'), path.join(app, 'tsconfig.json'));
    writeFileSync(
      path.join(app, 'package.json'),
      JSON.stringify({
        name: 'switchyard-packed-app',
        private: true,
        type: 'module',
        dependencies: { switchyard: `file:../${tarball}`, 'better-sqlite3': `file:${modules}/better-sqlite3`, commander: `file:${modules}/commander` },
        devDependencies: { '@types/node': `file:${modules}/@types/node` },
      }),
    );
    writeFileSync(path.join(app, 'app.ts'), APP);
    run('npm', ['install', '--ignore-scripts', '--no-audit', '--no-fund'], app);
    installed = path.join(app, 'node_modules', 'switchyard');
  }, 120_000);

  afterAll(() => {
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('contains the build, the LICENSE, and every docs page the README, the docs, the CLI and the errors point to', () => {
    for (const file of ['dist/index.js', 'dist/index.d.ts', 'dist/sqlite/index.d.ts', 'dist/cli/main.js', 'LICENSE', 'README.md']) {
      expect(existsSync(path.join(installed, file)), file).toBe(true);
    }
    const texts = [path.join(installed, 'README.md'), ...filesUnder(path.join(installed, 'docs')), ...filesUnder(path.join(installed, 'dist')).filter((f) => f.endsWith('.js'))];
    const broken: string[] = [];
    for (const file of texts) {
      const text = readFileSync(file, 'utf8');
      for (const [pointer] of text.matchAll(/docs\/[\w.-]+\.md/g)) if (!existsSync(path.join(installed, pointer))) broken.push(`${path.relative(installed, file)} -> ${pointer}`);
      if (!file.endsWith('.md')) continue;
      for (const [, link] of text.matchAll(/\]\(([^)#:\s]+)(?:#[^)]*)?\)/g)) if (!existsSync(path.resolve(path.dirname(file), link!))) broken.push(`${path.relative(installed, file)} -> ${link}`);
    }
    expect(broken).toEqual([]);
    expect(texts.filter((f) => f.endsWith('.md')).length).toBeGreaterThan(5);
  });

  it('ships the source every source map points at', () => {
    const maps = filesUnder(path.join(installed, 'dist')).filter((f) => f.endsWith('.map'));
    expect(maps.length).toBeGreaterThan(10);
    const missing = maps.flatMap((map) =>
      (JSON.parse(readFileSync(map, 'utf8')) as { sources: string[] }).sources
        .map((source) => path.resolve(path.dirname(map), source))
        .filter((source) => !existsSync(source))
        .map((source) => `${path.relative(installed, map)} -> ${path.relative(installed, source)}`),
    );
    expect(missing).toEqual([]);
  });

  it('compiles an app against it with skipLibCheck: false and no @types/better-sqlite3, and runs it', () => {
    expect(existsSync(path.join(app, 'node_modules/@types/better-sqlite3'))).toBe(false);
    const needBetterSqliteTypes = filesUnder(path.join(installed, 'dist'))
      .filter((f) => f.endsWith('.d.ts') && /from 'better-sqlite3'/.test(readFileSync(f, 'utf8')))
      .map((f) => path.relative(installed, f));
    expect(needBetterSqliteTypes).toEqual([]);
    const tsc = path.join(modules, 'typescript/bin/tsc');
    run(process.execPath, [tsc, '-p', 'tsconfig.json'], app);
    const result = JSON.parse(run(process.execPath, ['out/app.js'], app).trim()) as { handled: number; testBus: string; missing: string; missingOtel: string };
    expect(result.handled).toBe(42);
    expect(result.testBus).toBe('function');
    // amqplib is an optional peer the app did not install: a coded error naming it.
    expect(result.missing).toMatch(/^SY_ERR_PACKAGE_MISSING: switchyard\/rabbitmq needs the package amqplib/);
    expect(result.missing).toContain('npm install amqplib');
    expect(result.missingOtel).toMatch(/^SY_ERR_PACKAGE_MISSING: switchyard\/opentelemetry needs the package @opentelemetry\/api/);
  }, 60_000);

  it('installs the switchyard command', () => {
    const version = (JSON.parse(readFileSync(path.join(repo, 'package.json'), 'utf8')) as { version: string }).version;
    expect(run(path.join(app, 'node_modules/.bin/switchyard'), ['--version'], app).trim()).toBe(version);
  });
});
