/**
 * Redis dataset store: a hash snapshot plus a stream change log.
 *
 * Keys per dataset (hash-tagged so one dataset lives in one cluster slot):
 *   <prefix>:{<dataset>}:meta      hash  version, trimmed, generation
 *   <prefix>:{<dataset>}:entries   hash  key -> "<version>:<json>"
 *   <prefix>:{<dataset>}:log       stream, entry id "<version>-0", field r = record JSON
 *   <prefix>:{<dataset>}:replicas  hash  replica -> report JSON
 * `append` is one Lua script (atomic): check conditions, HINCRBY the version, change entries,
 * XADD with the version as the stream id, PUBLISH a wake-up. Resume is XRANGE from the last
 * applied version; a trimmed stream (XTRIM MINID) answers "gap" and the replica reads the hash.
 * The generation is written with the counter: Redis restarted empty has none (and head 0), one
 * rolled back to an older RDB file has the old one with a lower head; see DatasetStore.advance.
 */
import type { Redis, RedisOptions } from 'ioredis';
import { ErrorCodes, SwitchyardError } from '../core/errors.js';
import {
  appliedOps, checkDatasetName, conditionsOf, conflictError, decodeHint, decodeRecord, decodeReport, decodeValue, encodeRecord,
  isDelete, newGeneration,
} from '../datasets/records.js';
import type {
  AppendOptions, Appended, DatasetStore, LogRecord, Membership, NewRecord, ReadResult, ReplicaReport, Snapshot,
} from '../datasets/store.js';
import { loadPeerDependency } from '../core/peer-dependency.js';

const { Redis: RedisClient } = loadPeerDependency<typeof import('ioredis')>('ioredis', 'switchyard/redis');

/** Parses a wake-up payload "<version>@<generation>\n<record>"; undefined when it carries no usable record. */
function hintOf(dataset: string, payload: string): LogRecord | undefined {
  const nl = payload.indexOf('\n');
  return nl < 0 ? undefined : decodeHint(dataset, payload.slice(0, nl), payload.slice(nl + 1));
}

export interface RedisDatasetStoreOptions {
  /** e.g. `redis://127.0.0.1:6379`; or pass `client`. */
  url?: string;
  /** A client you own (not closed by close()); the subscriber connection is duplicated from it. */
  client?: Redis;
  /** Key prefix (default `sy`). */
  prefix?: string;
  /**
   * Apply the record a wake-up carries instead of reading it (default true; saves a read per
   * replica per write). A wake-up is not authenticated: with this on, anyone who can PUBLISH on this Redis
   * can feed replicas data. Turn it off when untrusted clients can reach the server.
   */
  wakeRecords?: boolean;
}

// Shared by both scripts: creates the generation with the counter, and when head < floor (the
// server lost data) starts a new generation at floor, trims the log through it and wakes replicas.
const ADVANCE_FN = `
local function advance(meta, log, floor, candidate, channel)
  local head = tonumber(redis.call('HGET', meta, 'version') or '0')
  local gen = redis.call('HGET', meta, 'generation')
  if head < floor then
    local trimmed = tonumber(redis.call('HGET', meta, 'trimmed') or '0')
    gen = candidate
    head = floor
    redis.call('HSET', meta, 'version', floor, 'generation', gen, 'trimmed', math.max(trimmed, floor))
    redis.call('XTRIM', log, 'MINID', (floor + 1) .. '-0')
    redis.call('PUBLISH', channel, tostring(floor))
  elseif not gen then
    gen = candidate
    redis.call('HSET', meta, 'generation', gen)
  end
  return gen, head
end
`;

// KEYS: meta, entries, log. ARGV: record, apply(1/0), channel, dataset, nOps, above, candidate generation,
// then per op: key, del(1/0), ifVersion ('' = none), value JSON.
// Returns {version, generation} or {-1, key, actualVersion}.
const APPEND = ADVANCE_FN + `
local n = tonumber(ARGV[5])
for i = 0, n - 1 do
  local b = 8 + i * 4
  if ARGV[b + 2] ~= '' then
    local cur = redis.call('HGET', KEYS[2], ARGV[b])
    local v = 0
    if cur then v = tonumber(string.match(cur, '^(%d+):')) end
    if v ~= tonumber(ARGV[b + 2]) then return {-1, ARGV[b], v} end
  end
end
local gen = advance(KEYS[1], KEYS[3], tonumber(ARGV[6]), ARGV[7], ARGV[3])
local version = redis.call('HINCRBY', KEYS[1], 'version', 1)
if ARGV[2] == '1' then
  for i = 0, n - 1 do
    local b = 8 + i * 4
    if ARGV[b + 1] == '1' then redis.call('HDEL', KEYS[2], ARGV[b])
    else redis.call('HSET', KEYS[2], ARGV[b], version .. ':' .. ARGV[b + 3]) end
  end
end
redis.call('XADD', KEYS[3], version .. '-0', 'r', ARGV[1])
-- The wake-up carries the record when small, so replicas at version - 1 need not read it.
if string.len(ARGV[1]) <= 65536 then redis.call('PUBLISH', ARGV[3], version .. '@' .. gen .. '\\n' .. ARGV[1])
else redis.call('PUBLISH', ARGV[3], tostring(version)) end
return {version, gen}
`;

// KEYS: meta, log. ARGV: floor, candidate generation, channel. Returns {generation, head}.
const ADVANCE = ADVANCE_FN + `
local gen, head = advance(KEYS[1], KEYS[2], tonumber(ARGV[1]), ARGV[2], ARGV[3])
return {gen, head}
`;

// KEYS: meta, log. ARGV: through. Returns the new trim point.
const TRIM = `
local head = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
local old = tonumber(redis.call('HGET', KEYS[1], 'trimmed') or '0')
local point = math.max(old, math.min(tonumber(ARGV[1]), head))
redis.call('XTRIM', KEYS[2], 'MINID', (point + 1) .. '-0')
redis.call('HSET', KEYS[1], 'trimmed', point)
return point
`;

type Keys = (dataset: string) => { meta: string; entries: string; log: string; replicas: string };

const metaOf = (fields: (string | null)[] | null | undefined) => ({
  version: Number(fields?.[0] ?? 0),
  trimmed: Number(fields?.[1] ?? 0),
  generation: fields?.[2] ?? '',
});

/** The results of a MULTI, each command's error thrown. */
async function execAll(multi: ReturnType<Redis['multi']>): Promise<unknown[]> {
  const res = await multi.exec();
  if (!res) throw new Error('redis transaction aborted');
  for (const [error] of res) if (error) throw error;
  return res.map(([, value]) => value);
}

/**
 * One subscriber connection (duplicated from the command client on first watch) for every
 * watched dataset. ioredis resubscribes after a reconnect; then every watcher is woken for the
 * catch-up read.
 */
function createWakeups(redis: Redis, channel: (dataset: string) => string, wakeRecords: boolean) {
  let sub: Redis | undefined;
  const watchers = new Map<string, Set<(hint?: LogRecord) => void>>();
  const subscriber = (): Redis => {
    if (sub) return sub;
    const s = redis.duplicate();
    s.on('error', () => undefined);
    s.on('message', (ch: string, payload: string) => {
      for (const [dataset, set] of watchers) {
        if (channel(dataset) !== ch) continue;
        const hint = wakeRecords ? hintOf(dataset, payload) : undefined;
        for (const wake of set) wake(hint);
      }
    });
    let first = true;
    s.on('ready', () => {
      if (first) first = false;
      else for (const set of watchers.values()) for (const wake of set) wake();
    });
    sub = s;
    return s;
  };
  return {
    async watch(dataset: string, onWake: (hint?: LogRecord) => void): Promise<() => Promise<void>> {
      let set = watchers.get(dataset);
      const s = subscriber();
      if (!set) {
        watchers.set(dataset, (set = new Set()));
        await s.subscribe(channel(dataset)).catch(() => undefined); // the catch-up read covers a failed subscribe
      }
      const wake = (hint?: LogRecord) => onWake(hint);
      set.add(wake);
      return async () => {
        set.delete(wake);
        if (set.size === 0) {
          watchers.delete(dataset);
          await s.unsubscribe(channel(dataset)).catch(() => undefined);
        }
      };
    },
    close() {
      const s = sub;
      sub = undefined;
      watchers.clear();
      if (s) s.disconnect();
    },
  };
}

/** The writes: each one script or one command, so atomic on the server. */
function writeCommands(redis: Redis, keys: Keys, channel: (dataset: string) => string) {
  return {
    async append(dataset: string, record: NewRecord, options: AppendOptions = {}): Promise<Appended> {
      const k = keys(dataset);
      const conditions = new Map(conditionsOf(record).map((c) => [c.key, c.ifVersion]));
      const ops = record.kind === 'abort' ? [] : record.ops;
      const apply = appliedOps(record).length > 0 ? '1' : '0';
      const above = Math.max(0, Math.floor(options.above ?? 0));
      const args: (string | number)[] = [encodeRecord(record), apply, channel(dataset), dataset, ops.length, above, newGeneration()];
      for (const op of ops) {
        args.push(op.key, isDelete(op) ? '1' : '0', op.ifVersion === undefined ? '' : String(op.ifVersion), isDelete(op) ? '' : JSON.stringify(op.value));
      }
      const result = (await redis.eval(APPEND, 3, k.meta, k.entries, k.log, ...args)) as [number, string?, number?];
      if (result[0] === -1) throw conflictError(dataset, String(result[1]), conditions.get(String(result[1])) ?? 0, Number(result[2]));
      return { version: Number(result[0]), generation: String(result[1]) };
    },
    async advance(dataset: string, floor: number) {
      const k = keys(dataset);
      const [generation, head] = (await redis.eval(ADVANCE, 2, k.meta, k.log, Math.max(0, Math.floor(floor)), newGeneration(), channel(dataset))) as [string, number];
      return { generation: String(generation), head: Number(head) };
    },
    async trim(dataset: string, throughVersion: number) {
      const k = keys(dataset);
      return Number(await redis.eval(TRIM, 2, k.meta, k.log, Math.max(0, Math.floor(throughVersion))));
    },
    async heartbeat(dataset: string, report: ReplicaReport) {
      await redis.hset(keys(dataset).replicas, report.replica, JSON.stringify(report));
    },
    async leave(dataset: string, replica: string) {
      await redis.hdel(keys(dataset).replicas, replica);
    },
  };
}

/** The reads: each one MULTI, so head, generation and data come from one moment. */
function readCommands(redis: Redis, keys: Keys) {
  return {
    async readSince(dataset: string, afterVersion: number, limit: number): Promise<ReadResult> {
      const k = keys(dataset);
      const [metaVal, logVal] = await execAll(
        redis.multi().hmget(k.meta, 'version', 'trimmed', 'generation').xrange(k.log, `${afterVersion + 1}-0`, '+', 'COUNT', limit),
      );
      const m = metaOf(metaVal as (string | null)[]);
      const at = { head: m.version, generation: m.generation };
      if (afterVersion < m.trimmed) return { kind: 'gap', trimmedThrough: m.trimmed, ...at };
      const records: LogRecord[] = (logVal as [string, string[]][]).map(([id, fields]) => {
        const version = Number(id.slice(0, id.indexOf('-')));
        return decodeRecord(dataset, version, fields[fields.indexOf('r') + 1] ?? '');
      });
      return { kind: 'records', records, ...at };
    },
    async snapshot(dataset: string): Promise<Snapshot> {
      const k = keys(dataset);
      const [metaVal, all] = await execAll(redis.multi().hmget(k.meta, 'version', 'trimmed', 'generation').hgetall(k.entries));
      const { version, generation } = metaOf(metaVal as (string | null)[]);
      const entries = Object.entries((all ?? {}) as Record<string, string>).map(([key, stored]) => {
        const at = stored.indexOf(':');
        return { key, version: Number(stored.slice(0, at)), value: decodeValue(dataset, key, stored.slice(at + 1)) };
      });
      return { version, generation, entries };
    },
    async membership(dataset: string): Promise<Membership> {
      const k = keys(dataset);
      const [metaVal, reports] = await execAll(redis.multi().hmget(k.meta, 'version', 'trimmed', 'generation').hvals(k.replicas));
      const m = metaOf(metaVal as (string | null)[]);
      return { head: m.version, generation: m.generation, replicas: ((reports ?? []) as string[]).map((r) => decodeReport(dataset, r)) };
    },
  };
}

export function redisDatasetStore(options: RedisDatasetStoreOptions): DatasetStore {
  if (!options.client && !options.url) {
    throw new SwitchyardError(ErrorCodes.CONFIG, 'redisDatasetStore needs a url or a client.', {
      fix: "Pass { url: 'redis://127.0.0.1:6379' } or { client }.",
    });
  }
  const prefix = options.prefix ?? 'sy';
  const base: RedisOptions = { maxRetriesPerRequest: 2, lazyConnect: false };
  const redis = options.client ?? new RedisClient(options.url ?? '', base);
  const own = !options.client;
  if (own) redis.on('error', () => undefined); // surfaced through failed commands; ioredis reconnects
  const keys: Keys = (dataset) => {
    checkDatasetName(dataset);
    const k = `${prefix}:{${dataset}}`;
    return { meta: `${k}:meta`, entries: `${k}:entries`, log: `${k}:log`, replicas: `${k}:replicas` };
  };
  const channel = (dataset: string) => `${prefix}:datasets:wake:${dataset}`;
  const wakeups = createWakeups(redis, channel, options.wakeRecords !== false);

  return {
    backend: 'redis',
    ...writeCommands(redis, keys, channel),
    ...readCommands(redis, keys),
    async watch(dataset, onWake) {
      keys(dataset);
      return wakeups.watch(dataset, onWake);
    },
    async close() {
      wakeups.close();
      if (own) await redis.quit().catch(() => redis.disconnect());
    },
  };
}
