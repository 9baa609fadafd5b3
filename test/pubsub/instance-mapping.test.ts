/**
 * Sender-side distribution in one process: the instance-mapping file (format, reload, bad
 * content) and round-robin of commands and publishes over mapped instances.
 */
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createEndpoint, defineCommand, defineEvent, handle, lineLogger, silentLogger, type Endpoint, type EndpointOptions, type Logger } from '../../src/index.js';
import { MemoryBroker, memoryTransport } from '../../src/memory/index.js';
import { memorySubscriptionStore } from '../../src/pubsub/memory-store.js';
import { subscriptions } from '../../src/pubsub/subscriptions.js';
import { parseInstanceMapping } from '../../src/scaleout/instance-mapping-file.js';
import { instanceMapping } from '../../src/scaleout/instance-mapping.js';
import { waitFor } from '../../src/testing/wait.js';

const ShipOrder = defineCommand<{ n: number }>('Shipping.ShipOrder');
const OrderPlaced = defineEvent<{ n: number }>('Sales.OrderPlaced');

let dir: string;
let file: string;
let broker: MemoryBroker;
let started: Endpoint[];
beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'sy-mapping-'));
  file = path.join(dir, 'instances.json');
  broker = new MemoryBroker();
  started = [];
});
afterEach(async () => {
  for (const endpoint of started.reverse()) await endpoint.stop();
  rmSync(dir, { recursive: true, force: true });
});

const writeMapping = (endpoints: Record<string, string[]>) => {
  // Replace the file the way editors and deploy tools do: write aside, then rename over it.
  writeFileSync(`${file}.tmp`, JSON.stringify({ endpoints }));
  renameSync(`${file}.tmp`, file);
};

async function start(options: Omit<EndpointOptions, 'transport'>): Promise<Endpoint> {
  const endpoint = createEndpoint({ transport: memoryTransport({ broker }), logger: silentLogger, ...options });
  await endpoint.start();
  started.push(endpoint);
  return endpoint;
}

function capturingLogger() {
  const errors: string[] = [];
  const logger: Logger = lineLogger((level, line) => void (level === 'error' && errors.push(line)));
  return { errors, logger };
}

const depths = (...addresses: string[]) => addresses.map((a) => broker.queues.get(a)?.length ?? 0);

describe('instance-mapping file format', () => {
  it('maps each listed discriminator to the instance queue <Endpoint>@<discriminator>', () => {
    const mapping = parseInstanceMapping('m.json', '{"endpoints":{"Shipping":["s1","s2"],"Billing":["b1"]}}');
    expect(Object.fromEntries(mapping)).toEqual({ Shipping: ['Shipping@s1', 'Shipping@s2'], Billing: ['Billing@b1'] });
  });

  it.each([
    ['not JSON', '{"endpoints":', 'is not valid JSON'],
    ['an array', '[]', 'must be a JSON object'],
    ['an unknown key', '{"endpoints":{},"instances":{}}', 'unknown key(s) "instances"'],
    ['no endpoints object', '{"endpoints":[]}', '"endpoints" must be an object'],
    ['an empty instance list', '{"endpoints":{"Shipping":[]}}', '"Shipping" must list at least one'],
    ['a non-string instance', '{"endpoints":{"Shipping":[1]}}', 'which is not a string'],
    ['an invalid discriminator', '{"endpoints":{"Shipping":["a b"]}}', 'not a valid name'],
    ['a repeated discriminator', '{"endpoints":{"Shipping":["s1","s1"]}}', 'lists "s1" twice'],
    ['an invalid endpoint name', '{"endpoints":{"bad name":["a"]}}', 'endpoint name "bad name" is not valid'],
  ])('rejects %s, naming the file and the problem', (_what, text, problem) => {
    expect(() => parseInstanceMapping('/etc/instances.json', text)).toThrow(expect.objectContaining({ code: 'SY_ERR_INSTANCE_MAPPING' }));
    expect(() => parseInstanceMapping('/etc/instances.json', text)).toThrow(new RegExp(`/etc/instances\\.json: .*${problem.replace(/[()[\]"]/g, '.')}`));
  });
});

describe('sender-side distribution', () => {
  it('sends commands round-robin to the mapped instances and unmapped endpoints to their shared queue', async () => {
    writeMapping({ Shipping: ['s1', 's2', 's3'] });
    for (const q of ['Shipping@s1', 'Shipping@s2', 'Shipping@s3', 'Billing']) await broker.ensure(q);
    const sales = await start({ name: 'Sales', routes: { 'Shipping.*': 'Shipping' }, features: [instanceMapping({ path: file })] });
    for (let n = 0; n < 6; n++) await sales.send(ShipOrder, { n });
    await sales.send(ShipOrder, { n: 6 }, { to: 'Billing' });
    expect(depths('Shipping@s1', 'Shipping@s2', 'Shipping@s3', 'Shipping', 'Billing')).toEqual([2, 2, 2, 0, 1]);
  });

  it('reloads the file when it changes, and keeps the last good mapping when the new content is bad', async () => {
    writeMapping({ Shipping: ['s1'] });
    for (const q of ['Shipping@s1', 'Shipping@s2']) await broker.ensure(q);
    const { errors, logger } = capturingLogger();
    const mapping = instanceMapping({ path: file, pollMs: 50 });
    const sales = await start({ name: 'Sales', routes: { 'Shipping.*': 'Shipping' }, logger, features: [mapping] });
    writeMapping({ Shipping: ['s2'] });
    await waitFor(() => mapping.addressesOf('Shipping')?.[0] === 'Shipping@s2', { what: 'the changed mapping to load' });
    writeFileSync(file, '{"endpoints":{"Shipping":["s1",]}}');
    await waitFor(() => errors.length > 0, { what: 'the bad mapping to be reported' });
    expect(errors[0]).toContain(file);
    expect(errors[0]).toContain('is not valid JSON');
    expect(errors[0]).toContain('Keeping the last good mapping');
    await sales.send(ShipOrder, { n: 1 });
    expect(depths('Shipping@s1', 'Shipping@s2')).toEqual([0, 1]);
  });

  it('refuses to start when the mapping file is missing', async () => {
    const endpoint = createEndpoint({ name: 'Sales', transport: memoryTransport({ broker }), logger: silentLogger, features: [instanceMapping({ path: file })] });
    await expect(endpoint.start()).rejects.toMatchObject({ code: 'SY_ERR_INSTANCE_MAPPING' });
  });

  it('publishes one copy per mapped logical subscriber, round-robin, with a counter separate from sends', async () => {
    writeMapping({ Shipping: ['s1', 's2'], Sales: ['p1'] });
    const store = memorySubscriptionStore();
    const mapping = () => instanceMapping({ path: file });
    const salesMapping = mapping();
    const sales = await start({
      name: 'Sales',
      instance: { discriminator: 'p1' },
      queues: { shared: false, instance: true },
      routes: { 'Shipping.*': 'Shipping', 'Sales.*': 'Sales' },
      features: [salesMapping, subscriptions({ store, publishes: [OrderPlaced], instanceMapping: salesMapping, cacheMs: 0 })],
    });
    // Park Shipping's deliveries: its instances subscribe, then stop receiving, so queues can be counted.
    for (const discriminator of ['s1', 's2']) {
      const m = mapping();
      const shipping = await start({
        name: 'Shipping',
        instance: { discriminator },
        queues: { shared: false, instance: true },
        routes: { 'Sales.*': 'Sales' },
        handlers: [handle(OrderPlaced, () => undefined), handle(ShipOrder, () => undefined)],
        features: [m, subscriptions({ instanceMapping: m })],
      });
      await waitFor(async () => (await store.subscribersOf([OrderPlaced.typeName])).some((s) => s.instance === discriminator), { what: `${discriminator} to subscribe` });
      await shipping.stop();
    }
    expect((await store.subscribersOf([OrderPlaced.typeName])).map((s) => s.address).sort()).toEqual(['Shipping@s1', 'Shipping@s2']);
    // With one counter for both, the publish after a send would start at s2.
    await sales.send(ShipOrder, { n: 1 }); // s1
    await sales.publish(OrderPlaced, { n: 1 }); // s1: publishes count on their own
    await sales.publish(OrderPlaced, { n: 2 }); // s2
    await sales.send(ShipOrder, { n: 2 }); // s2
    const received = (address: string) => (broker.queues.get(address) ?? []).map((m) => `${m.message.headers['sy1-enclosed-types']} ${m.message.body}`);
    expect(received('Shipping@s1')).toEqual(['Shipping.ShipOrder {"n":1}', 'Sales.OrderPlaced {"n":1}']);
    expect(received('Shipping@s2')).toEqual(['Sales.OrderPlaced {"n":2}', 'Shipping.ShipOrder {"n":2}']);
  });
});
