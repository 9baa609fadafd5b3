/**
 * The metric instruments (names in attributes.ts, the list in docs/observability.md), the
 * feature that reports queue depth where the transport can count its queues (QueueAdmin): the
 * signal an autoscaler reads, and the lag of this process's dataset replicas.
 */
import type { BatchObservableCallback, Counter, Histogram, Meter, ObservableCallback } from '@opentelemetry/api';
import type { EndpointFeature } from '../core/feature.js';
import { openReplicas } from '../datasets/observers.js';
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

/**
 * Reports how far behind each dataset replica open in this process is, on every collection:
 * `switchyard.dataset.replica.versions_behind` and `.time_behind` (seconds), read from the
 * replicas' own knowledge (no store I/O). Returns the function that stops reporting.
 */
export function datasetLagGauges(meter: Meter): () => void {
  const versions = meter.createObservableGauge(Metrics.DatasetVersionsBehind, {
    unit: '{version}',
    description: "Versions of the dataset this replica knows the store has and has not applied yet.",
  });
  const time = meter.createObservableGauge(Metrics.DatasetTimeBehind, {
    unit: 's',
    description: 'How long ago the oldest change this replica has not applied was written (0 when current).',
  });
  const callback: BatchObservableCallback = (result) => {
    for (const replica of openReplicas()) {
      const lag = replica.lag();
      const attributes = { [Attr.DatasetName]: replica.dataset, [Attr.DatasetReplica]: replica.instance, [Attr.DatasetBackend]: replica.backend };
      result.observe(versions, lag.versions, attributes);
      result.observe(time, lag.ms / 1000, attributes);
    }
  };
  meter.addBatchObservableCallback(callback, [versions, time]);
  return () => meter.removeBatchObservableCallback(callback, [versions, time]);
}
