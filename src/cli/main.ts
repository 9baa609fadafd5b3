#!/usr/bin/env node
/**
 * The `switchyard` command. Each capability registers its subcommands from its own module.
 */
import { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { registerDemoCommand } from './demo-command.js';
import { registerDistributorCommand } from './distributor-command.js';
import { registerErrorsCommand } from './errors-command.js';

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };

const program = new Command()
  .name('switchyard')
  .description('Switchyard: a service bus for Node.js. Run a demo, operate queues, error queues and distributors.')
  .version(pkg.version, '-v, --version')
  .showHelpAfterError();

registerDemoCommand(program);
registerDistributorCommand(program);
registerErrorsCommand(program);

program.parseAsync(process.argv).catch((error: unknown) => {
  const e = error as { message?: string; code?: string };
  console.error(`switchyard: ${e.message ?? String(error)}`);
  process.exitCode = 1;
});
