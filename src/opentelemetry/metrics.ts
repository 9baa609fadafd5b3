/**
 * The metric instruments (names in attributes.ts, the list in docs/observability.md), and the
 * feature that reports queue depth where the transport can count its queues (QueueAdmin): the
 * signal an autoscaler reads.
 */
import type { Counter, Histogram, Meter, ObservableCallback } from '@opentelemetry/api';
import type { EndpointFeature } from '../core/feature.js';
import type { Address } from '../core/identity.js';
import { Attr, Metrics } from './attributes.js';

export interface MessageMetrics {
  readonly processDuration: Histogram;
  readonly sent: Counter;
  readonly consumed: Counter;
  readonly criticalTime: Histogram;
  readonly retries: Counter;
  readonly errorQueueMoves: Counter;
}

export function messageMetrics(meter: Meter): MessageMetrics {
  return {
    processDuration: meter.createHistogram(Metrics.ProcessDuration, { unit: 's', description: 'Time to process a message: receive to settled, retries and error-queue moves included.' }),
    sent: meter.createCounter(Metrics.SentMessages, { unit: '{message}', description: 'Messages sent, published or replied (one per destination queue); a handler\'s count once its message is handled.' }),
    consumed: meter.createCounter(Metrics.ConsumedMessages, { unit: '{message}', description: 'Messages delivered to this endpoint for processing (every delivery, retries included).' }),
    criticalTime: meter.createHistogram(Metrics.CriticalTime, { unit: 's', description: 'From the time the message was sent to the time it was handled (needs roughly synchronised clocks).' }),
    retries: meter.createCounter(Metrics.Retries, { unit: '{retry}', description: 'Failed attempts that were retried, by switchyard.retry.kind (immediate, delayed).' }),
    errorQueueMoves: meter.createCounter(Metrics.ErrorQueueMoves, { unit: '{message}', description: 'Messages moved to the error queue.' }),
  };
}

/**
 * Reports `switchyard.queue.depth` for the endpoint's public address, its instance queue and its
 * error queue (those that exist), on every collection. Nothing where the transport has no admin.
 */
export function queueDepthFeature(meter: Meter, system: string, errorQueue: Address): EndpointFeature {
  const gauge = meter.createObservableGauge(Metrics.QueueDepth, { unit: '{message}', description: 'Messages waiting or in flight in a queue.' });
  let callback: ObservableCallback | undefined;
  return {
    name: 'opentelemetry-queue-depth',
    async start(host) {
      const admin = host.transport.admin;
      if (!admin) return;
      const queues: Address[] = [];
      for (const address of new Set([host.publicAddress, host.identity.address, errorQueue])) {
        if (await host.transport.queueExists(address)) queues.push(address);
      }
      callback = async (result) => {
        for (const address of queues) {
          // A queue that cannot be counted right now is left out of this collection, not reported as 0.
          const depth = await admin.depth(address).catch(() => undefined);
          if (depth !== undefined) result.observe(depth, { [Attr.System]: system, [Attr.DestinationName]: address });
        }
      };
      gauge.addCallback(callback);
    },
    async stopping() {
      if (callback) gauge.removeCallback(callback);
      callback = undefined;
    },
  };
}
