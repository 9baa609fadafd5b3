import { SwitchyardError, ErrorCodes } from './errors.js';

/** A logical endpoint name, e.g. `Sales`. Routing and subscriptions talk about these. */
export type EndpointName = string & { readonly __brand?: 'EndpointName' };
/** Where a transport delivers: a queue name. */
export type Address = string & { readonly __brand?: 'Address' };

/** One running process of a logical endpoint. */
export interface InstanceIdentity {
  readonly endpoint: EndpointName;
  readonly host: string;
  readonly pid: number;
  /** Distinguishes instances on one host; stable across restarts when set explicitly. */
  readonly discriminator: string;
  /** `<endpoint>@<discriminator>`: the instance's own queue, used by sender-side distribution and the distributor. */
  readonly address: Address;
  /** `<host>:<pid>:<discriminator>`, for logs and headers. */
  readonly id: string;
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9._\-]{0,119}$/;

/** Validates a logical endpoint or queue name; names go into SQL, AMQP and file names. */
export function checkName(kind: string, name: unknown): string {
  if (typeof name !== 'string' || !NAME.test(name)) {
    throw new SwitchyardError(
      ErrorCodes.CONFIG,
      `${kind} ${JSON.stringify(name)} is not a valid name.`,
      { fix: `Use 1-120 characters: letters, digits, '.', '_' or '-', starting with a letter or digit.` },
    );
  }
  return name;
}

/** Validates a queue address: a name, or an instance queue `<endpoint>@<discriminator>`. */
export function checkAddress(kind: string, address: unknown): Address {
  const at = typeof address === 'string' ? address.indexOf('@') : -1;
  if (at < 0) return checkName(kind, address);
  const text = address as string;
  try {
    checkName(kind, text.slice(0, at));
    checkName(kind, text.slice(at + 1));
  } catch {
    throw new SwitchyardError(ErrorCodes.CONFIG, `${kind} ${JSON.stringify(text)} is not a valid address.`, {
      fix: `Use a queue name, or <endpoint>@<discriminator> for an instance queue; each part 1-120 characters: letters, digits, '.', '_' or '-'.`,
    });
  }
  return text;
}

/** The logical endpoint's shared queue: competing consumers take from it. */
export function sharedAddress(endpoint: EndpointName): Address {
  return endpoint as string;
}

export function instanceAddress(endpoint: EndpointName, discriminator: string): Address {
  return `${endpoint}@${discriminator}`;
}

export function makeIdentity(
  endpoint: EndpointName,
  host: string,
  pid: number,
  discriminator: string,
): InstanceIdentity {
  checkName('Endpoint name', endpoint);
  checkName('Instance discriminator', discriminator);
  return {
    endpoint,
    host,
    pid,
    discriminator,
    address: instanceAddress(endpoint, discriminator),
    id: `${host}:${pid}:${discriminator}`,
  };
}
