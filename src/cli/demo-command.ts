import type { Command } from 'commander';
import type { DemoOptions } from './demos/scenario.js';

/**
 * `switchyard demo [scenario]`: scenarios run real processes on the embedded SQLite default in
 * a temporary folder. `switchyard demo-role` is the hidden entry those processes run.
 */
const scenarios: Record<string, () => Promise<{ run(options: DemoOptions): Promise<void> }>> = {
  orders: () => import('./demos/orders.js'),
  pubsub: () => import('./demos/pubsub.js'),
  distributor: () => import('./demos/distributor.js'),
  datasets: async () => {
    const { runDatasetsDemo } = await import('./demos/datasets.js');
    return { run: ({ args }: DemoOptions) => runDatasetsDemo(args) };
  },
};

export const DEFAULT_SCENARIO = 'distributor';

export function registerDemoCommand(program: Command): void {
  program
    .command('demo')
    .description(`Run a demo on the embedded SQLite default (no server needed). Scenarios: ${Object.keys(scenarios).join(', ')}.`)
    .argument('[scenario]', 'which demo to run', DEFAULT_SCENARIO)
    .argument('[args...]', 'arguments for the scenario')
    .option('--json', 'end with one JSON summary line')
    .action(async (scenario: string, args: string[], options: { json?: boolean }) => {
      const load = scenarios[scenario];
      if (!load) throw new Error(`Unknown demo scenario "${scenario}". Choose one of: ${Object.keys(scenarios).join(', ')}.`);
      await (await load()).run({ json: options.json === true, args });
    });

  program
    .command('demo-role', { hidden: true })
    .argument('<scenario>')
    .argument('<role>')
    .argument('[args...]')
    .action(async (scenario: string, role: string, args: string[]) => {
      const load = scenarios[scenario];
      if (!load) throw new Error(`Unknown demo scenario "${scenario}".`);
      const mod = (await load()) as { roles?: Record<string, (args: string[]) => Promise<void>> };
      const fn = mod.roles?.[role];
      if (!fn) throw new Error(`Demo scenario "${scenario}" has no role "${role}".`);
      await fn(args);
    });
}
