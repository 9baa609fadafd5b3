/**
 * `switchyard/opentelemetry`: traces and metrics for endpoints and the distributor, per the
 * OpenTelemetry messaging semantic conventions (docs/observability.md). @opentelemetry/api is an
 * optional peer dependency: only this subpath imports it, so an application without it pays
 * nothing.
 *
 *   const telemetry = openTelemetry({ tracerProvider, meterProvider });
 *   const endpoint = createEndpoint(telemetry.instrument({ name: 'Sales', transport, handlers }));
 *   const distributor = await startDistributor({ endpoint: 'Sales', transport: telemetry.traceForwards(transport), store });
 *   telemetry.observeDatasets();   // the lag of this process's dataset replicas
 */
import type { MeterProvider, TracerProvider } from '@opentelemetry/api';
import { api } from './api.js';
import type { EndpointFeature } from '../core/feature.js';
import type { Behaviour } from '../core/pipeline.js';
import type { Transport } from '../core/transport.js';
import type { EndpointOptions } from '../endpoint/endpoint.js';
import { telemetryBehaviours } from './behaviours.js';
import { traceForwards } from './forwards.js';
import { datasetLagGauges, messageMetrics, queueDepthFeature } from './metrics.js';

export { Attr as TelemetryAttributes, Metrics as TelemetryMetrics, SpanEvents as TelemetrySpanEvents } from './attributes.js';

export interface OpenTelemetryOptions {
  /** Where spans go (default: the global provider, `trace.setGlobalTracerProvider`). */
  tracerProvider?: TracerProvider;
  /** Where metrics go (default: the global provider). */
  meterProvider?: MeterProvider;
  /** Make spans (default true). */
  traces?: boolean;
  /** Record metrics (default true). */
  metrics?: boolean;
}

export interface SwitchyardTelemetry {
  /** The endpoint's options with the telemetry behaviours first and the queue-depth feature added. */
  instrument(options: EndpointOptions): EndpointOptions;
  /** The behaviours alone, for an endpoint on `transport` (what `instrument` adds). */
  behaviours(transport: Transport): Behaviour[];
  /** The feature reporting queue depth where the transport has QueueAdmin (what `instrument` adds). */
  queueDepth(transport: Transport, errorQueue?: string): EndpointFeature | undefined;
  /** A distributor's transport with a span per forwarded message (pass it to startDistributor). */
  traceForwards(transport: Transport): Transport;
  /**
   * Reports the lag of every dataset replica this process has open (versions and time behind),
   * until the returned function is called. Call it once per process: each call adds a reporter.
   */
  observeDatasets(): () => void;
}

const SCOPE = 'switchyard';

export function openTelemetry(options: OpenTelemetryOptions = {}): SwitchyardTelemetry {
  const tracer = options.traces === false ? undefined : (options.tracerProvider ?? api.trace.getTracerProvider()).getTracer(SCOPE);
  const meter = options.metrics === false ? undefined : (options.meterProvider ?? api.metrics.getMeterProvider()).getMeter(SCOPE);
  // One set of instruments per telemetry value: every endpoint it instruments records into them.
  const instruments = meter && messageMetrics(meter);
  const telemetry: SwitchyardTelemetry = {
    behaviours: (transport) => telemetryBehaviours({ tracer, metrics: instruments, system: transport.name }),
    queueDepth: (transport, errorQueue = 'error') => (meter ? queueDepthFeature(meter, transport.name, errorQueue) : undefined),
    instrument(endpointOptions) {
      const { transport } = endpointOptions;
      const depth = telemetry.queueDepth(transport, endpointOptions.recoverability?.errorQueue);
      return {
        ...endpointOptions,
        // First: the process span and the metrics wrap the user's own behaviours too.
        behaviours: [...telemetry.behaviours(transport), ...(endpointOptions.behaviours ?? [])],
        features: [...(endpointOptions.features ?? []), ...(depth && !endpointOptions.sendOnly ? [depth] : [])],
      };
    },
    traceForwards: (transport) => (tracer ? traceForwards(tracer, transport) : transport),
    observeDatasets: () => (meter ? datasetLagGauges(meter) : () => undefined),
  };
  return telemetry;
}
