/**
 * `healthServer(endpoint, { port })`: Kubernetes probes on node:http, no framework.
 *   GET /health/live   200 while the endpoint has not stopped (it may be draining), else 503
 *   GET /health/ready  200 while it is running and receiving, else 503
 * Both answer with the endpoint's health() as JSON (and a hosted or standalone distributor's
 * workers when one is given). Anything else: 404; other methods: 405.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ErrorCodes, SwitchyardError } from '../core/errors.js';
import type { EndpointHealth } from '../endpoint/health.js';
import type { DistributorHandle } from '../scaleout/distributor.js';

export interface HealthServerOptions {
  /** 0 picks a free port (read it from the result). */
  port: number;
  /** Interface to listen on (default: all, as a probe from the kubelet needs). */
  host?: string;
  /** A distributor whose workers to report: its handle, or the hostedDistributor feature. */
  distributor?: DistributorHandle | { readonly handle: DistributorHandle | undefined };
}

export interface HealthServer {
  readonly port: number;
  close(): Promise<void>;
}

interface HealthSource {
  health(): EndpointHealth;
}

function distributorView(option: HealthServerOptions['distributor']) {
  const handle = option && ('status' in option ? option : option.handle);
  if (!handle) return undefined;
  const { workers, freeSlots, forwarded } = handle.status();
  return { workers, freeSlots, forwarded };
}

function answer(response: ServerResponse, code: number, body: unknown): void {
  response.writeHead(code, { 'content-type': 'application/json', 'cache-control': 'no-store' });
  response.end(JSON.stringify(body));
}

export async function healthServer(endpoint: HealthSource, options: HealthServerOptions): Promise<HealthServer> {
  const handler = (request: IncomingMessage, response: ServerResponse) => {
    const path = (request.url ?? '').split('?')[0];
    if (path !== '/health/live' && path !== '/health/ready') return answer(response, 404, { error: 'not found: use /health/live or /health/ready' });
    if (request.method !== 'GET' && request.method !== 'HEAD') return answer(response, 405, { error: 'use GET' });
    const health = endpoint.health();
    const distributor = distributorView(options.distributor);
    const ok = path === '/health/live' ? health.live : health.ready;
    answer(response, ok ? 200 : 503, distributor ? { ...health, distributor } : health);
  };
  const server = createServer(handler);
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) =>
      reject(
        new SwitchyardError(ErrorCodes.CONFIG, `The health server cannot listen on ${options.host ?? '*'}:${options.port}: ${error.code ?? error.message}.`, {
          fix: 'Choose a free port (healthServer option `port`, 0 picks one), or stop what listens there.',
          cause: error,
        }),
      ),
    );
    server.listen(options.port, options.host, () => {
      server.removeAllListeners('error');
      resolve();
    });
  });
  // Probes must not keep a stopping process alive.
  server.unref();
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((error) => (error ? reject(error) : resolve()));
        server.closeAllConnections();
      }),
  };
}
