/**
 * The instance-mapping file: which instances each logical endpoint runs, for sender-side
 * distribution. Format (JSON, documented in docs/publish-subscribe.md):
 *
 *   { "endpoints": { "Shipping": ["s1", "s2"], "Billing": ["b1"] } }
 *
 * Each string is an instance discriminator; the instance's queue is `<Endpoint>@<discriminator>`
 * (the queue an endpoint with `queues: { instance: true }` receives from).
 *
 * The file is watched (fs.watch on its folder, so editors that replace the file are seen) and
 * polled as a fallback; a change that does not parse is reported and the last good mapping kept.
 */
import { readFileSync, statSync, watch, type FSWatcher } from 'node:fs';
import path from 'node:path';
import { ErrorCodes, SwitchyardError } from '../core/errors.js';
import { checkName, instanceAddress, type Address, type EndpointName } from '../core/identity.js';
import type { Logger } from '../core/logger.js';

/** Logical endpoint -> the queue addresses of its instances, in file order. */
export type InstanceAddresses = ReadonlyMap<EndpointName, readonly Address[]>;

function problem(file: string, what: string): SwitchyardError {
  return new SwitchyardError(ErrorCodes.INSTANCE_MAPPING, `Instance mapping ${file}: ${what}.`, {
    fix: 'Write { "endpoints": { "<Endpoint>": ["<discriminator>", ...] } } (see docs/publish-subscribe.md); the last good mapping stays in use meanwhile.',
  });
}

/** Parses the file's text; throws SY_ERR_INSTANCE_MAPPING naming the file and the problem. */
export function parseInstanceMapping(file: string, text: string): InstanceAddresses {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (cause) {
    throw problem(file, `is not valid JSON (${(cause as Error).message})`);
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data)) throw problem(file, 'must be a JSON object');
  const extra = Object.keys(data).filter((key) => key !== 'endpoints');
  if (extra.length > 0) throw problem(file, `has unknown key(s) ${extra.map((k) => JSON.stringify(k)).join(', ')}; only "endpoints" is allowed`);
  const endpoints = (data as { endpoints?: unknown }).endpoints;
  if (typeof endpoints !== 'object' || endpoints === null || Array.isArray(endpoints)) throw problem(file, '"endpoints" must be an object');
  const result = new Map<EndpointName, Address[]>();
  for (const [endpoint, instances] of Object.entries(endpoints)) {
    try {
      checkName('Endpoint name', endpoint);
    } catch {
      throw problem(file, `endpoint name ${JSON.stringify(endpoint)} is not valid`);
    }
    if (!Array.isArray(instances) || instances.length === 0) throw problem(file, `"${endpoint}" must list at least one instance discriminator`);
    const addresses: Address[] = [];
    for (const discriminator of instances as unknown[]) {
      if (typeof discriminator !== 'string') throw problem(file, `"${endpoint}" lists ${JSON.stringify(discriminator)}, which is not a string`);
      try {
        checkName('Instance discriminator', discriminator);
      } catch {
        throw problem(file, `"${endpoint}" lists the discriminator ${JSON.stringify(discriminator)}, which is not a valid name`);
      }
      const address = instanceAddress(endpoint, discriminator);
      if (addresses.includes(address)) throw problem(file, `"${endpoint}" lists "${discriminator}" twice`);
      addresses.push(address);
    }
    result.set(endpoint, addresses);
  }
  return result;
}

export interface MappingWatcherOptions {
  readonly file: string;
  readonly pollMs: number;
  readonly logger: Logger;
  readonly onChange: (mapping: InstanceAddresses) => void;
}

/**
 * Loads the file once (throwing when it is missing or bad: start-up must not run on a guess),
 * then reloads it on change. Returns a function that stops watching.
 */
export function watchInstanceMapping(options: MappingWatcherOptions): () => void {
  const { file, logger } = options;
  const read = () => readFileSync(file, 'utf8');
  let lastText: string;
  try {
    lastText = read();
  } catch (cause) {
    throw new SwitchyardError(ErrorCodes.INSTANCE_MAPPING, `Instance mapping ${file} cannot be read: ${(cause as Error).message}.`, {
      fix: 'Create the file or fix the `path` option of instanceMapping(); every process of the system reads the same file.',
      cause,
    });
  }
  options.onChange(parseInstanceMapping(file, lastText));
  let lastBad: string | undefined;
  let stamp = statStamp(file);

  const reload = () => {
    stamp = statStamp(file);
    let text: string;
    try {
      text = read();
    } catch (cause) {
      report(`Instance mapping ${file} cannot be read (${(cause as Error).message}).`, `unreadable:${(cause as Error).message}`);
      return;
    }
    if (text === lastText) return;
    try {
      const mapping = parseInstanceMapping(file, text);
      lastText = text;
      lastBad = undefined;
      options.onChange(mapping);
      logger.info(`instance mapping ${file} reloaded: ${[...mapping].map(([e, a]) => `${e} x${a.length}`).join(', ') || 'no endpoints'}`);
    } catch (error) {
      report((error as Error).message, text);
    }
  };
  // Logged once per distinct bad content, so the fallback poll does not repeat it every tick.
  const report = (line: string, fingerprint: string) => {
    if (fingerprint === lastBad) return;
    lastBad = fingerprint;
    logger.error(`${line} Keeping the last good mapping.`);
  };

  let watcher: FSWatcher | undefined;
  try {
    watcher = watch(path.dirname(path.resolve(file)), (_event, name) => {
      if (name === null || name === path.basename(file)) reload();
    });
    watcher.on('error', () => undefined); // The poll below still covers changes.
    watcher.unref();
  } catch {
    watcher = undefined;
  }
  const poll = setInterval(() => {
    if (statStamp(file) !== stamp) reload();
  }, options.pollMs);
  poll.unref();
  return () => {
    clearInterval(poll);
    watcher?.close();
  };
}

function statStamp(file: string): string {
  try {
    const s = statSync(file);
    return `${s.ino}:${s.size}:${s.mtimeMs}`;
  } catch {
    return 'missing';
  }
}
