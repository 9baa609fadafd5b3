/**
 * sqlite.send.traced: the sqlite.send load (1 KB commands sent 100 at a time, a no-op handler,
 * synchronous=FULL) with tracing on against tracing off, alternating in the same run. Tracing on
 * is switchyard/opentelemetry with the SDK's BasicTracerProvider and a no-op span processor: every
 * span is made, sampled and ended, and goes nowhere, so the ratio is the cost of the spans and
 * the trace headers, not of an exporter. Metrics are off in both (sqlite.send.metered has them).
 */
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { ROOT_CONTEXT, SpanKind, trace, type Span, type Tracer } from '@opentelemetry/api';
import { BasicTracerProvider, NoopSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createEndpoint, defineCommand, silentLogger, type EndpointOptions } from '../../src/index.js';
import { openTelemetry, type SwitchyardTelemetry } from '../../src/opentelemetry/index.js';
import { sqliteTransport } from '../../src/sqlite/index.js';
import { Attr } from '../../src/opentelemetry/attributes.js';
import { pingCounter, sendPings, type PingBody } from '../load.js';
import { median } from '../stats.js';
import type { BenchResult, BenchSuite } from '../types.js';

const MESSAGES = 20_000;
const ROUNDS = 7;
const Ping = defineCommand<PingBody>('Bench.Ping');

interface Run {
  readonly msgsPerSec: number;
  /** CPU time of this process (user + system) per message: what the spans cost, whatever the disk and the neighbours do. */
  readonly cpuUsPerMessage: number;
}

async function run(messages: number, telemetry: SwitchyardTelemetry | undefined): Promise<Run> {
  const dir = mkdtempSync(path.join(tmpdir(), 'sy-bench-otel-'));
  const counter = pingCounter(Ping, messages);
  const options: EndpointOptions = {
    name: 'Bench',
    transport: sqliteTransport({ path: path.join(dir, 'bench.db'), synchronous: 'full' }),
    routes: { 'Bench.*': 'Bench' },
    concurrency: 64,
    logger: silentLogger,
    handlers: [counter.handler],
  };
  const endpoint = createEndpoint(telemetry ? telemetry.instrument(options) : options);
  await endpoint.start();
  const started = performance.now();
  const cpuBefore = process.cpuUsage();
  await sendPings(endpoint, Ping, messages, { batch: 100 });
  await counter.finished;
  const elapsed = performance.now() - started;
  const cpu = process.cpuUsage(cpuBefore);
  await endpoint.stop();
  rmSync(dir, { recursive: true, force: true });
  return { msgsPerSec: (messages / elapsed) * 1000, cpuUsPerMessage: (cpu.user + cpu.system) / messages };
}

/**
 * The SDK's own floor: the three spans a handled message gets (producer, process, handler), with
 * the attribute counts switchyard/opentelemetry gives them, made and ended in a loop with 64 in
 * flight (the load's concurrency) and no bus around them. CPU µs per message: what tracing costs
 * however little Switchyard adds.
 */
function sdkFloorUsPerMessage(tracer: Tracer, messages: number): number {
  const inFlight: Span[] = [];
  const cpuBefore = process.cpuUsage();
  for (let i = 0; i < messages; i++) {
    const id = `m-${i}`;
    const producer = tracer.startSpan('send Bench', { kind: SpanKind.PRODUCER, attributes: {
      [Attr.System]: 'sqlite', [Attr.DestinationName]: 'Bench', [Attr.OperationName]: 'send', [Attr.OperationType]: 'send',
      [Attr.MessageId]: id, [Attr.ConversationId]: id, [Attr.MessageType]: 'Bench.Ping', [Attr.ClientId]: 'bench' } }, ROOT_CONTEXT);
    const remote = trace.setSpanContext(ROOT_CONTEXT, { ...producer.spanContext(), isRemote: true });
    const processing = tracer.startSpan('process Bench', { kind: SpanKind.CONSUMER, attributes: {
      [Attr.System]: 'sqlite', [Attr.DestinationName]: 'Bench', [Attr.ConsumerGroup]: 'Bench', [Attr.OperationType]: 'process',
      [Attr.OperationName]: 'process', [Attr.MessageId]: id, [Attr.ClientId]: 'bench', [Attr.ConversationId]: id, [Attr.Attempt]: 1, [Attr.DelayedRetries]: 0 } }, remote);
    const handling = tracer.startSpan('handle Bench.Ping', { kind: SpanKind.INTERNAL, attributes: { [Attr.Handler]: 'Bench.Ping' } }, trace.setSpan(remote, processing));
    handling.end();
    processing.setAttribute(Attr.MessageType, 'Bench.Ping');
    processing.setAttribute(Attr.Outcome, 'handled');
    inFlight.push(producer, processing);
    if (inFlight.length >= 128) for (const span of inFlight.splice(0)) span.end();
  }
  for (const span of inFlight) span.end();
  const cpu = process.cpuUsage(cpuBefore);
  return (cpu.user + cpu.system) / messages;
}

const suite: BenchSuite = {
  names: ['sqlite.send.traced', 'sqlite.send.metered'],
  async run({ only, log }) {
    const tracerProvider = new BasicTracerProvider({ spanProcessors: [new NoopSpanProcessor()] });
    const traced = openTelemetry({ tracerProvider, metrics: false });
    const metered = openTelemetry({ traces: false, meterProvider: new MeterProvider() });
    log('warming up (synchronous=full, WAL, 1 KB bodies, concurrency 64)');
    await run(2000, undefined);
    await run(2000, traced);
    await run(2000, metered);
    const results: BenchResult[] = [];
    for (const [name, telemetry, what] of [
      ['sqlite.send.traced', traced, 'tracing'],
      ['sqlite.send.metered', metered, 'metrics'],
    ] as const) {
      if (!only(name)) continue;
      const off: Run[] = [];
      const on: Run[] = [];
      // Alternate, each side first every other round, and keep the medians: a noisy neighbour
      // (or the disk warming up) then hits both sides alike.
      for (let round = 1; round <= ROUNDS; round++) {
        if (round % 2 === 0) on.push(await run(MESSAGES, telemetry));
        off.push(await run(MESSAGES, undefined));
        if (round % 2 === 1) on.push(await run(MESSAGES, telemetry));
        const [a, b] = [off.at(-1)!, on.at(-1)!];
        log(`${name} round ${round}: off ${a.msgsPerSec.toFixed(0)} msgs/s ${a.cpuUsPerMessage.toFixed(1)} µs CPU/msg, ${what} on ${b.msgsPerSec.toFixed(0)} msgs/s ${b.cpuUsPerMessage.toFixed(1)} µs CPU/msg`);
      }
      const baseline = median(off.map((r) => r.msgsPerSec));
      const measured = median(on.map((r) => r.msgsPerSec));
      const cpuOff = median(off.map((r) => r.cpuUsPerMessage));
      const cpuOn = median(on.map((r) => r.cpuUsPerMessage));
      log(`${name}: CPU per message ${cpuOff.toFixed(1)} µs off, ${cpuOn.toFixed(1)} µs on (ratio ${(cpuOff / cpuOn).toFixed(2)})`);
      let floor: { sdkFloorUsPerMessage: number; bestCpuRatioAtFloor: number } | undefined;
      if (name === 'sqlite.send.traced') {
        sdkFloorUsPerMessage(tracerProvider.getTracer('floor'), MESSAGES); // warm-up
        const us = median(Array.from({ length: ROUNDS }, () => sdkFloorUsPerMessage(tracerProvider.getTracer('floor'), MESSAGES)));
        floor = { sdkFloorUsPerMessage: Number(us.toFixed(2)), bestCpuRatioAtFloor: Number((cpuOff / (cpuOff + us)).toFixed(3)) };
        log(`${name}: the SDK alone (the same three spans, no bus) ${us.toFixed(1)} µs CPU per message: at best a CPU ratio of ${floor.bestCpuRatioAtFloor.toFixed(2)} with nothing of Switchyard's own`);
      }
      results.push({
        name,
        transport: 'sqlite',
        messages: MESSAGES,
        msgsPerSec: measured,
        p50Ms: null,
        p99Ms: null,
        baseline: `the same endpoint without switchyard/opentelemetry (sqlite.send load)`,
        baselineMsgsPerSec: baseline,
        ratio: measured / baseline,
        settings: { synchronous: 'full', journal: 'WAL', bodyBytes: 1000, concurrency: 64, [what]: name === 'sqlite.send.traced' ? 'BasicTracerProvider + NoopSpanProcessor' : 'MeterProvider, no reader', cpuUsPerMessageOff: cpuOff, cpuUsPerMessageOn: cpuOn, ...floor },
      });
    }
    return results;
  },
};

export default suite;
