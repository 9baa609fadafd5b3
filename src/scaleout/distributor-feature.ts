/**
 * `hostedDistributor({ store })`: runs the distributor inside an endpoint process, on the
 * endpoint's transport. Starts after the endpoint's receivers, stops after they drained (before
 * the transport closes). Its worker timeouts run on the endpoint's clock (the test kit's virtual one
 * in a test bus) unless `clock` says otherwise. The endpoint itself must not receive from the shared queue: combine it
 * with distributorWorker on `queues: { shared: false, instance: true }`. The endpoint's health()
 * reports the distributor's workers under `features.distributor`.
 */
import type { EndpointFeature } from '../core/feature.js';
import { distributorHealth, startDistributor, type DistributorHandle, type DistributorOptions } from './distributor.js';

export type HostedDistributorOptions = Omit<DistributorOptions, 'endpoint' | 'transport'> & { endpoint?: string };

export function hostedDistributor(options: HostedDistributorOptions): EndpointFeature & { readonly handle: DistributorHandle | undefined } {
  let handle: DistributorHandle | undefined;
  return {
    name: 'hosted-distributor',
    get handle() {
      return handle;
    },
    async start(host) {
      handle = await startDistributor({
        ...options,
        endpoint: options.endpoint ?? host.identity.endpoint,
        transport: host.transport,
        logger: options.logger ?? host.logger,
        clock: options.clock ?? host.clock,
      });
    },
    async stop() {
      await handle?.stop();
    },
    health: () => (handle ? { distributor: distributorHealth(handle.status()) } : {}),
  };
}
