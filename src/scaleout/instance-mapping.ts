/**
 * Sender-side distribution: `instanceMapping({ path })` is an endpoint feature that sends each
 * command for a mapped logical endpoint to one of its instances, round-robin, and tells the
 * subscriptions feature where a mapped endpoint's instances are (publishes keep their own
 * round-robin counter there). Endpoints not in the file are reached at their shared queue.
 *
 *   const mapping = instanceMapping({ path: './instances.json' });
 *   createEndpoint({ name: 'Shipping', queues: { shared: false, instance: true },
 *                    instance: { discriminator: 's1' }, features: [mapping, subscriptions({ instanceMapping: mapping })] });
 */
import type { EndpointFeature } from '../core/feature.js';
import type { Address, EndpointName } from '../core/identity.js';
import { ErrorCodes, SwitchyardError } from '../core/errors.js';
import { watchInstanceMapping, type InstanceAddresses } from './instance-mapping-file.js';
import { RoundRobin } from './round-robin.js';

export interface InstanceMappingOptions {
  /** The mapping file every process of the system reads (format: docs/publish-subscribe.md). */
  path: string;
  /** Fallback poll for changes the file watcher misses (default 1000 ms). */
  pollMs?: number;
}

export interface InstanceMapping extends EndpointFeature {
  /** The instance queues of a mapped logical endpoint, in file order; undefined when not mapped. */
  addressesOf(endpoint: EndpointName): readonly Address[] | undefined;
}

export function instanceMapping(options: InstanceMappingOptions): InstanceMapping {
  if (typeof options?.path !== 'string' || options.path.length === 0) {
    throw new SwitchyardError(ErrorCodes.CONFIG, 'instanceMapping() needs the option `path`.', {
      fix: "Pass instanceMapping({ path: './instances.json' }) naming the file every process reads.",
    });
  }
  let current: InstanceAddresses = new Map();
  let unwatch: (() => void) | undefined;
  const sends = new RoundRobin();
  return {
    name: 'instance-mapping',
    async setup(host) {
      unwatch ??= watchInstanceMapping({
        file: options.path,
        pollMs: options.pollMs ?? 1000,
        logger: host.logger,
        onChange: (mapping) => (current = mapping),
      });
    },
    async stop() {
      unwatch?.();
      unwatch = undefined;
    },
    resolveAddress(endpoint) {
      return sends.next(endpoint, current.get(endpoint) ?? []);
    },
    addressesOf(endpoint) {
      return current.get(endpoint);
    },
  };
}
