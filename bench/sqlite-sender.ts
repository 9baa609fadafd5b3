/**
 * Child process for the cross-process latency run: sends `count` Ping commands at `rate` per
 * second to the Bench endpoint, each stamped with its scheduled send time.
 */
import { createEndpoint, defineCommand, silentLogger } from '../src/index.js';
import { sqliteTransport } from '../src/sqlite/index.js';
import { wallNow } from '../src/core/clock.js';
import { offerAtFixedRate, PING_PAYLOAD, type PingBody } from './load.js';

const [file, count, rate] = process.argv.slice(2);
const Ping = defineCommand<PingBody>('Bench.Ping');
const endpoint = createEndpoint({ name: 'BenchSender', sendOnly: true, transport: sqliteTransport({ path: file! }), routes: { 'Bench.*': 'Bench' }, logger: silentLogger });
await endpoint.start();
await offerAtFixedRate(Number(count), Number(rate), (scheduledAt) => void endpoint.send(Ping, { payload: PING_PAYLOAD, scheduledAt }), wallNow() + 50);
await endpoint.stop();
