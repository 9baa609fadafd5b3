/**
 * `switchyard errors list|show|retry|delete|archive`: the failed-message API
 * (src/recoverability/failed-messages.ts) for people (tables) and scripts (`--json`). Every
 * subcommand takes the store flags from ./connect.ts and says which store it used.
 *
 * Header values come from the wire: they are printed with control characters removed (a header
 * must not be able to drive the terminal), never evaluated.
 *
 * Exit code: 0 when every id was found and done; 1 otherwise (the output says which and why).
 */
import type { Command } from 'commander';
import { ErrorCodes, SwitchyardError } from '../core/errors.js';
import { Headers } from '../core/headers.js';
import type { Transport } from '../core/transport.js';
import type { FailedMessage, FailedMessageFilter, FailedMessageSummary } from '../recoverability/failed-message.js';
import { failedMessages, type FailedMessageOutcome, type FailedMessages } from '../recoverability/failed-messages.js';
import { addStoreOptions, connect, type Connection } from './connect.js';

interface CommonFlags {
  errorQueue: string;
  json?: boolean;
  [store: string]: unknown;
}

interface FilterFlags extends CommonFlags {
  endpoint?: string;
  type?: string;
  exception?: string;
  since?: string;
  until?: string;
}

const UNITS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** `2h`, `30m`, `7d`, `45s` (that long ago) or an ISO 8601 date. */
export function parseTime(flag: string, value: string, now = Date.now()): Date {
  const relative = /^(\d+)([smhd])$/.exec(value);
  const date = relative ? new Date(now - Number(relative[1]) * UNITS[relative[2]!]!) : new Date(value);
  if (Number.isNaN(date.getTime())) {
    throw new SwitchyardError(ErrorCodes.CONFIG, `${flag} ${JSON.stringify(value)} is not a time.`, {
      fix: `Use a duration ago such as 30m, 2h or 7d, or an ISO date such as 2026-01-31T12:00:00Z.`,
    });
  }
  return date;
}

function parseCount(flag: string, value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n)) {
    throw new SwitchyardError(ErrorCodes.CONFIG, `${flag} ${JSON.stringify(value)} is not a whole number.`, { fix: `Pass ${flag} 0 or more.` });
  }
  return n;
}

function filterOf(flags: FilterFlags): FailedMessageFilter {
  return {
    ...(flags.endpoint !== undefined && { endpoint: flags.endpoint }),
    ...(flags.type !== undefined && { messageType: flags.type }),
    ...(flags.exception !== undefined && { exception: flags.exception }),
    ...(flags.since !== undefined && { since: parseTime('--since', flags.since) }),
    ...(flags.until !== undefined && { until: parseTime('--until', flags.until) }),
  };
}

/** One line of untrusted text, safe for a terminal. */
function clean(text: string | undefined, max = Infinity): string {
  const line = (text ?? '').replace(/[\u0000-\u001f\u007f-\u009f]+/g, ' ').trim();
  return line.length > max ? `${line.slice(0, max - 1)}…` : line;
}

/** Several lines of untrusted text (a stack, a body): keeps newlines and tabs only. */
function cleanBlock(text: string): string {
  return text.replace(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g, '');
}

function table(headings: string[], rows: string[][]): string {
  const widths = headings.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('  ');
  return [line(headings), ...rows.map(line)].join('\n');
}

function timeOf(date: Date | undefined): string {
  return date ? date.toISOString().replace('T', ' ').slice(0, 19) : '?';
}

function exceptionOf(m: FailedMessageSummary): string {
  const type = m.exceptionCode ?? m.exceptionType ?? 'unknown';
  return `${type}: ${m.exceptionMessage ?? m.reason ?? ''}`;
}

function summaryJson(m: FailedMessageSummary): Record<string, unknown> {
  return { ...m, failedAt: m.failedAt?.toISOString() };
}

function outcomeJson(o: FailedMessageOutcome): Record<string, unknown> {
  return o.status === 'failed' ? { id: o.id, status: o.status, queue: o.queue, error: { code: o.error.code, message: o.error.message } } : { ...o };
}

function outcomeLine(o: FailedMessageOutcome, errorQueue: string): string {
  switch (o.status) {
    case 'retried':
      return `retried   ${o.id} -> ${o.queues.map((q) => clean(q)).join(', ')}`;
    case 'deleted':
    case 'archived':
      return `${o.status.padEnd(9)} ${o.id}`;
    case 'not-found':
      return `not found ${clean(o.id)}: not in ${errorQueue} (already retried, deleted or archived, or a wrong id)`;
    case 'failed':
      return `failed    ${o.id}: ${o.error.message}`;
  }
}

const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

/** `6 times after 3 delayed retries and 1 manual retry`: the TRIED column, as a person says it. */
export function triedText(m: Pick<FailedMessageSummary, 'immediateAttempts' | 'delayedRetries' | 'manualRetries'>): string {
  const before = [
    ...(m.delayedRetries > 0 ? [plural(m.delayedRetries, 'delayed retry', 'delayed retries')] : []),
    ...(m.manualRetries > 0 ? [plural(m.manualRetries, 'manual retry', 'manual retries')] : []),
  ];
  // No attempt count in the headers (a row written by something else): unknown, not "0 times".
  const tried = m.immediateAttempts > 0 ? plural(m.immediateAttempts, 'time') : '?';
  return `${tried}${before.length ? ` after ${before.join(' and ')}` : ''}`;
}

/** ` matching --type "Sales.*" --since "2h"`: the filters a list was given, for its heading. */
function filterText(flags: FilterFlags): string {
  const given = (['endpoint', 'type', 'exception', 'since', 'until'] as const).flatMap((name) => (flags[name] === undefined ? [] : [`--${name} ${JSON.stringify(flags[name])}`]));
  return given.length ? ` matching ${given.join(' ')}` : '';
}

/** Nothing failed yet, or a mistyped --error-queue: the note tells the two apart. */
async function missingQueueNote(transport: Transport, errorQueue: string): Promise<string | undefined> {
  if (await transport.queueExists(errorQueue)) return undefined;
  const queues = (await transport.admin?.queues()) ?? [];
  return `(there is no queue ${errorQueue} yet: an endpoint creates it when it starts; queues there: ${queues.join(', ') || 'none'})`;
}

interface ListPage {
  messages: FailedMessageSummary[];
  total: number;
  offset: number;
}

function printList(ops: FailedMessages, heading: { store: string; filters: string; missingQueueNote?: string }, page: ListPage): void {
  const { messages, total, offset } = page;
  const shown = messages.length === 0 || messages.length === total ? '' : `; showing ${offset + 1}-${offset + messages.length}`;
  console.log(`${plural(total, 'failed message')} in ${ops.errorQueue}${heading.filters}${shown} (${heading.store})`);
  if (heading.missingQueueNote) console.log(heading.missingQueueNote);
  if (messages.length === 0) {
    if (offset > 0 && total > 0) console.log(`none from --offset ${offset}`);
    return;
  }
  const rows = messages.map((m) => [m.id, timeOf(m.failedAt), clean(m.failedQueue ?? '?', 40), clean(m.messageType ?? '?', 40), triedText(m), clean(exceptionOf(m), 80)]);
  console.log(table(['ID', 'FAILED AT (UTC)', 'QUEUE', 'TYPE', 'TRIED', 'EXCEPTION'], rows));
  if (offset + messages.length < total) console.log(`more: --offset ${offset + messages.length}`);
}

function printShow(m: FailedMessage): void {
  const fields: [string, string][] = [
    ['id', m.id],
    ['type', m.messageType ?? '?'],
    ['failed queue', m.failedQueue ?? '?'],
    ['failed at', m.failedAt?.toISOString() ?? '?'],
    ['endpoint', `${m.endpoint ?? '?'} (instance ${m.instance ?? '?'})`],
    ['exception', `${m.exceptionType ?? '?'}${m.exceptionCode ? ` [${m.exceptionCode}]` : ''}: ${m.exceptionMessage ?? ''}`],
    ['reason', m.reason ?? '?'],
    ['tried', triedText(m)],
  ];
  for (const [name, value] of fields) console.log(`${name.padEnd(13)} ${clean(value)}`);
  console.log('\nheaders');
  for (const [name, value] of Object.entries(m.headers).sort(([a], [b]) => a.localeCompare(b))) {
    if (name !== 'sy1-failure-stack' && name !== Headers.RawHeaders) console.log(`  ${clean(name)}: ${clean(value, 200)}`);
  }
  // A message the transport could not read as sent: its stored headers as they were (data, shown, never evaluated).
  const raw = m.headers[Headers.RawHeaders];
  if (raw !== undefined) console.log(`\nraw headers (as stored)\n${cleanBlock(raw)}`);
  console.log(`\nstack\n${cleanBlock(m.stack ?? '(none)')}`);
  console.log(`\nbody (${Buffer.byteLength(m.body)} bytes)\n${cleanBlock(m.body.length > 4000 ? `${m.body.slice(0, 4000)}… (truncated; --json shows all)` : m.body)}`);
}

/** Opens the store, runs `work`, closes the store; errors reach main.ts, which prints them. */
async function withErrorQueue(flags: CommonFlags, work: (ops: FailedMessages, connection: Connection) => Promise<void>): Promise<void> {
  const connection = await connect(flags);
  try {
    await work(failedMessages(connection.transport, { errorQueue: flags.errorQueue }), connection);
  } finally {
    await connection.close();
  }
}

function reportOutcomes(ops: FailedMessages, flags: CommonFlags, outcomes: FailedMessageOutcome[]): void {
  if (flags.json) console.log(JSON.stringify({ errorQueue: ops.errorQueue, outcomes: outcomes.map(outcomeJson) }));
  else if (outcomes.length === 0) console.log(`nothing matched in ${ops.errorQueue}`);
  else for (const o of outcomes) console.log(outcomeLine(o, ops.errorQueue));
  const done = outcomes.filter((o) => o.status !== 'failed' && o.status !== 'not-found').length;
  if (!flags.json && outcomes.length > 1) console.log(`${done} of ${outcomes.length} done`);
  if (done < outcomes.length) process.exitCode = 1;
}

function common(command: Command): Command {
  return addStoreOptions(command)
    .option('--error-queue <name>', 'the error queue (an archive: <name>.archive)', 'error')
    .option('--json', 'print JSON for scripts');
}

function filters(command: Command): Command {
  return command
    .option('--endpoint <name>', 'only messages that failed in this logical endpoint')
    .option('--type <type>', 'only this message type (or a namespace: Sales.*)')
    .option('--exception <text>', 'only failures whose exception type, code, message or reason contains this text')
    .option('--since <time>', 'failed at or after: 30m, 2h, 7d ago, or an ISO date')
    .option('--until <time>', 'failed before: 30m, 2h, 7d ago, or an ISO date');
}

export function registerErrorsCommand(program: Command): void {
  const errors = program
    .command('errors')
    .description('Operate the error queue: list, show, retry, delete or archive failed messages.');

  filters(common(errors.command('list').description('List failed messages, oldest first.')))
    .option('--limit <n>', 'at most this many', '50')
    .option('--offset <n>', 'skip this many matching messages', '0')
    .action(async (flags: FilterFlags & { limit: string; offset: string }) => {
      await withErrorQueue(flags, async (ops, { store, transport }) => {
        const page = await ops.list({ ...filterOf(flags), limit: parseCount('--limit', flags.limit), offset: parseCount('--offset', flags.offset) });
        if (flags.json) console.log(JSON.stringify({ store, errorQueue: ops.errorQueue, ...page, messages: page.messages.map(summaryJson) }));
        else printList(ops, { store, filters: filterText(flags), missingQueueNote: await missingQueueNote(transport, ops.errorQueue) }, page);
      });
    });

  common(errors.command('show').description('Show one failed message: headers, exception and body.'))
    .argument('<id>', 'message id')
    .action(async (id: string, flags: CommonFlags) => {
      await withErrorQueue(flags, async (ops) => {
        const message = await ops.show(id);
        if (!message) {
          throw new SwitchyardError(ErrorCodes.MESSAGE_NOT_FOUND, `No message ${clean(id)} in ${ops.errorQueue}.`, {
            fix: 'List the ids with `switchyard errors list`; a retried, deleted or archived message is no longer there.',
          });
        }
        if (flags.json) console.log(JSON.stringify({ ...summaryJson(message), stack: message.stack, headers: message.headers, body: message.body }));
        else printShow(message);
      });
    });

  filters(common(errors.command('retry').description('Return failed messages to the queues they failed in, with their original ids.')))
    .argument('[ids...]', 'message ids')
    .option('--all', 'every message matching the filters (all of them without filters)')
    .action(async (ids: string[], flags: FilterFlags & { all?: boolean }) => {
      if ((flags.all === true) === ids.length > 0) {
        throw new SwitchyardError(ErrorCodes.CONFIG, flags.all ? 'Both ids and --all were given.' : 'No ids given.', {
          fix: 'Pass message ids (switchyard errors retry <id...>) or --all with optional filters, not both.',
        });
      }
      await withErrorQueue(flags, async (ops) => reportOutcomes(ops, flags, flags.all ? await ops.retryAll(filterOf(flags)) : await ops.retry(ids)));
    });

  common(errors.command('delete').description('Delete failed messages for good.'))
    .argument('<ids...>', 'message ids')
    .action(async (ids: string[], flags: CommonFlags) => {
      await withErrorQueue(flags, async (ops) => reportOutcomes(ops, flags, await ops.delete(ids)));
    });

  common(errors.command('archive').description('Move failed messages to <error-queue>.archive (list them there with --error-queue).'))
    .argument('<ids...>', 'message ids')
    .action(async (ids: string[], flags: CommonFlags) => {
      await withErrorQueue(flags, async (ops) => reportOutcomes(ops, flags, await ops.archive(ids)));
    });
}
