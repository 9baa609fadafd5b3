/**
 * Real services for adapter tests. A test file calls `service('postgres')` at the top level:
 * when the service answers, the suite runs against it; when it does not, the suite is skipped
 * with the reason, unless CI is set, in which case it fails (CI must never go green by skipping).
 */
import net from 'node:net';

export const serviceUrls = {
  postgres: process.env.SWITCHYARD_POSTGRES_URL ?? process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test',
  redis: process.env.SWITCHYARD_REDIS_URL ?? process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
  rabbitmq: process.env.SWITCHYARD_RABBITMQ_URL ?? process.env.AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672',
} as const;

export type ServiceName = keyof typeof serviceUrls;

/** True when a TCP connection to the URL's host and port opens within a second. */
export function reachable(url: string): Promise<boolean> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = net.connect({ host: hostname, port: Number(port) });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1000, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

export interface ServiceCheck {
  url: string;
  /** Reason to skip, or undefined when the service is up. */
  skipReason: string | undefined;
}

export async function service(name: ServiceName): Promise<ServiceCheck> {
  const url = serviceUrls[name];
  if (await reachable(url)) return { url, skipReason: undefined };
  const reason = `${name} is not reachable at ${new URL(url).host}; start it (see .ci/run) or set SWITCHYARD_${name.toUpperCase()}_URL`;
  if (process.env.CI) throw new Error(`CI is set and ${reason}`);
  return { url, skipReason: reason };
}
