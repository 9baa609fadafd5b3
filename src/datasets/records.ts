/**
 * Encoding and checks shared by every dataset store, so each backend says the same thing in the
 * same words. Pure functions, no I/O.
 */
import { ErrorCodes, SwitchyardError } from '../core/errors.js';
import { checkName } from '../core/identity.js';
import type { EntryOp, JsonValue, LogRecord, NewRecord, ReplicaReport } from './store.js';

export const MAX_KEY_LENGTH = 512;

export function checkDatasetName(name: unknown): string {
  return checkName('Dataset name', name);
}

export function checkKey(dataset: string, key: unknown): string {
  if (typeof key !== 'string' || key.length === 0 || key.length > MAX_KEY_LENGTH) {
    throw new SwitchyardError(ErrorCodes.CONFIG, `Dataset "${dataset}": key ${JSON.stringify(key)} is not valid.`, {
      fix: `Use a non-empty string of at most ${MAX_KEY_LENGTH} characters.`,
    });
  }
  return key;
}

export function isDelete(op: EntryOp): op is Extract<EntryOp, { delete: true }> {
  return 'delete' in op && op.delete === true;
}

/** The ops a record applies to the entries: only `write` and `activate` change data. */
export function appliedOps(record: NewRecord): readonly EntryOp[] {
  return record.kind === 'write' || record.kind === 'activate' ? record.ops : [];
}

/** Ops that carry a condition, for the store's compare-and-set check. */
export function conditionsOf(record: NewRecord): { key: string; ifVersion: number }[] {
  if (record.kind === 'abort') return [];
  const out: { key: string; ifVersion: number }[] = [];
  for (const op of record.ops) if (op.ifVersion !== undefined) out.push({ key: op.key, ifVersion: op.ifVersion });
  return out;
}

export function conflictError(dataset: string, key: string, expected: number, actual: number): SwitchyardError {
  return new SwitchyardError(
    ErrorCodes.DATASET_CONFLICT,
    `Dataset "${dataset}": key "${key}" is at version ${actual}, not ${expected} as the write required; nothing was written.`,
    { fix: 'Another writer changed the key first. Read the current entry (getEntry) and retry with its version.' },
  );
}

export function corruptError(dataset: string, what: string, cause?: unknown): SwitchyardError {
  return new SwitchyardError(ErrorCodes.DATASET_CORRUPT, `Dataset "${dataset}": cannot read ${what}.`, {
    fix: 'The store holds data this version of Switchyard did not write; check for another writer or a newer schema.',
    cause,
  });
}

/** A fresh store generation id (random; compared only for equality). */
export function newGeneration(): string {
  return crypto.randomUUID();
}

/** Wake-up payload prefix "<version>@<generation>": a hint without a generation is never applied. */
export function hintHeader(version: number, generation: string): string {
  return `${version}@${generation}`;
}

/** Decodes a wake-up hint "<version>@<generation>" + record body; undefined when it is not usable. */
export function decodeHint(dataset: string, header: string, body: string): LogRecord | undefined {
  const at = header.indexOf('@');
  if (at < 0) return undefined;
  try {
    return { ...decodeRecord(dataset, Number(header.slice(0, at)), body), generation: header.slice(at + 1) };
  } catch {
    return undefined; // a hint only: the log read covers it
  }
}

/** The record body as stored: the version lives in its own column / stream id. */
export function encodeRecord(record: NewRecord): string {
  return JSON.stringify(record);
}

const KINDS = new Set(['write', 'stage', 'activate', 'abort']);

export function decodeRecord(dataset: string, version: number, body: string): LogRecord {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch (error) {
    throw corruptError(dataset, `log record ${version}`, error);
  }
  if (typeof parsed !== 'object' || parsed === null || !KINDS.has((parsed as { kind?: unknown }).kind as string)) {
    throw corruptError(dataset, `log record ${version}`);
  }
  const record = parsed as NewRecord;
  if (record.kind !== 'abort' && !Array.isArray(record.ops)) throw corruptError(dataset, `log record ${version}`);
  return { ...record, version };
}

export function decodeValue(dataset: string, key: string, text: string): JsonValue {
  try {
    return JSON.parse(text) as JsonValue;
  } catch (error) {
    throw corruptError(dataset, `entry "${key}"`, error);
  }
}

export function decodeReport(dataset: string, text: string): ReplicaReport {
  try {
    const report = JSON.parse(text) as ReplicaReport;
    if (typeof report.replica !== 'string' || typeof report.applied !== 'number') throw new Error('missing fields');
    return { ...report, votes: Array.isArray(report.votes) ? report.votes : [] };
  } catch (error) {
    throw corruptError(dataset, 'a replica report', error);
  }
}

/** Validates a record before it is sent to a store. */
export function checkRecord(dataset: string, record: NewRecord): void {
  if (record.kind === 'abort') return;
  for (const op of record.ops) {
    checkKey(dataset, op.key);
    if (op.ifVersion !== undefined && (!Number.isSafeInteger(op.ifVersion) || op.ifVersion < 0)) {
      throw new SwitchyardError(ErrorCodes.CONFIG, `Dataset "${dataset}": ifVersion ${op.ifVersion} is not a version.`, {
        fix: 'Pass a version read from getEntry(key).version, or 0 for "the key must not exist".',
      });
    }
  }
}
