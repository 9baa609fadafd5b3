/**
 * The foundation demo: a Client process sends PlaceOrder commands to the logical endpoint Sales,
 * which runs as two instances (competing consumers on one SQLite queue) and replies OrderAccepted.
 */
import path from 'node:path';
import { createEndpoint, defineCommand, defineMessage, handle, silentLogger } from '../../index.js';
import { sqliteTransport } from '../../sqlite/index.js';
import type { DemoOptions } from './scenario.js';
import { onShutdown } from '../signals.js';
import { inDemoFolder, report, type DemoFolder } from './processes.js';

const PlaceOrder = defineCommand<{ orderId: number }>('Sales.PlaceOrder');
const OrderAccepted = defineMessage<{ orderId: number; by: string }>('Sales.OrderAccepted');

export const roles = {
  async sales([db, discriminator]: string[]) {
    const endpoint = createEndpoint({
      name: 'Sales',
      transport: sqliteTransport({ path: db! }),
      instance: { discriminator: discriminator! },
      logger: silentLogger,
      handlers: [
        handle(PlaceOrder, async (order, ctx) => {
          await ctx.reply(OrderAccepted, { orderId: order.orderId, by: discriminator! });
        }),
      ],
    });
    await endpoint.start();
    onShutdown((force) => endpoint.stop({ signal: force }));
    report({ ready: discriminator });
  },

  async client([db, count]: string[]) {
    const total = Number(count);
    const accepted = new Set<number>();
    let done: () => void;
    const finished = new Promise<void>((resolve) => (done = resolve));
    const endpoint = createEndpoint({
      name: 'Client',
      transport: sqliteTransport({ path: db! }),
      routes: { 'Sales.*': 'Sales' },
      logger: silentLogger,
      handlers: [
        handle(OrderAccepted, (reply) => {
          accepted.add(reply.orderId);
          report({ accepted: reply.orderId, by: reply.by });
          if (accepted.size === total) done();
        }),
      ],
    });
    await endpoint.start();
    for (let orderId = 1; orderId <= total; orderId++) await endpoint.send(PlaceOrder, { orderId });
    await finished;
    await endpoint.stop();
  },
};

export async function run(options: DemoOptions): Promise<void> {
  await inDemoFolder((folder) => runIn(folder, options));
}

async function runIn(folder: DemoFolder, { json }: DemoOptions): Promise<void> {
  const db = path.join(folder.path, 'switchyard.db');
  const total = 20;
  const say = (line: string) => (json ? undefined : console.log(line));
  say(`Switchyard demo: a Client sends ${total} PlaceOrder commands to Sales (2 instances), which replies.`);
  say(`Embedded SQLite transport at ${db}\n`);
  const sales = ['a', 'b'].map((d) => folder.spawn('orders', 'sales', [db, d], `Sales@${d}`));
  await Promise.all(sales.map((s) => s.waitFor((r) => r.ready !== undefined)));
  const perInstance: Record<string, number> = {};
  const started = Date.now();
  const client = folder.spawn('orders', 'client', [db, String(total)], 'Client');
  client.onReport((r) => {
    if (r.accepted === undefined) return;
    const by = `Sales@${String(r.by)}`;
    perInstance[by] = (perInstance[by] ?? 0) + 1;
    say(`  order ${String(r.accepted).padStart(2)} accepted by ${by}`);
  });
  const code = await client.exited;
  await Promise.all(sales.map((s) => s.stop()));
  const accepted = Object.values(perInstance).reduce((a, b) => a + b, 0);
  say(`\n${accepted}/${total} orders accepted in ${Date.now() - started} ms`);
  for (const [instance, n] of Object.entries(perInstance)) say(`  ${instance}: ${n}`);
  if (json) console.log(JSON.stringify({ sent: total, accepted, perInstance }));
  if (code !== 0 || accepted !== total) process.exitCode = 1;
}
