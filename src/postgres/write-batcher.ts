/**
 * Group commit for the PostgreSQL transport: the sends and completions requested in the same
 * tick go to the server as one statement, so one round trip and one WAL flush serve many
 * messages (a flush per message capped the bus at a few hundred messages per second).
 *
 * The statement deletes the completed rows whose lease token still matches (fencing), inserts
 * the outgoing messages of the completions that succeeded and every plain send, and notifies
 * each destination queue; every caller learns from the returned seqs whether its own completion
 * got through. At most `maxInFlight` statements run at once; requests made meanwhile wait and go
 * together in the next one.
 */
import type pg from 'pg';
import type { Outgoing, QueueOutgoing } from '../core/transport.js';

interface Pending extends GroupWrite {
  resolve(removed: boolean): void;
  reject(error: unknown): void;
}

/** The statement; `s` is the quoted schema and `now` the database clock in epoch ms. */
export function groupWriteSql(s: string, now: string): string {
  return `WITH del AS (DELETE FROM ${s}.messages m USING unnest($1::bigint[], $2::bigint[]) AS k(seq, token)
      WHERE m.seq = k.seq AND m.lease_token = k.token RETURNING m.seq),
    ins AS (INSERT INTO ${s}.messages (queue, id, headers, body, visible_at)
      SELECT q, i, h, b, coalesce(d, ${now}) FROM unnest($3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[], $8::bigint[]) AS o(q, i, h, b, d, owner)
      WHERE o.owner IS NULL OR o.owner IN (SELECT seq FROM del) RETURNING queue)
    SELECT array(SELECT seq::text FROM del) AS removed, (SELECT count(pg_notify($9, q)) FROM (SELECT DISTINCT queue AS q FROM ins) n) AS woken`;
}

/** One request of a group write: a row to delete (fenced by its token), or none for a plain send, and what to send. */
export interface GroupWrite {
  readonly remove: { seq: string; token: string } | undefined;
  readonly outgoing: readonly Outgoing[];
}

/** The parameters of groupWriteSql for `group` (destinations already checked). */
export function groupWriteValues(group: readonly GroupWrite[], channel: string): unknown[] {
  const seqs: string[] = [];
  const tokens: string[] = [];
  const columns: [string[], string[], string[], string[], (number | null)[], (string | null)[]] = [[], [], [], [], [], []];
  for (const p of group) {
    if (p.remove) {
      seqs.push(p.remove.seq);
      tokens.push(p.remove.token);
    }
    for (const o of p.outgoing) {
      const q = o as QueueOutgoing;
      columns[0].push(q.destination);
      columns[1].push(q.message.id);
      columns[2].push(JSON.stringify(q.message.headers));
      columns[3].push(q.message.body);
      columns[4].push(q.deliverAt === undefined ? null : Math.floor(q.deliverAt));
      columns[5].push(p.remove?.seq ?? null);
    }
  }
  return [seqs, tokens, ...columns, channel];
}

/** The seqs a group write removed. */
export type GroupWriteResult = pg.QueryResult<{ removed: string[] }>;

export class WriteBatcher {
  private queue: Pending[] = [];
  private scheduled = false;
  private inFlight = 0;

  constructor(
    private readonly run: (text: string, values: unknown[]) => Promise<GroupWriteResult>,
    private readonly sql: string,
    private readonly channel: string,
    private readonly maxInFlight: number,
  ) {}

  /** Sends `outgoing` (destinations already checked). */
  send(outgoing: readonly Outgoing[]): Promise<void> {
    return this.enqueue(undefined, outgoing).then(() => undefined);
  }

  /** Deletes the row if its lease token still matches and, only then, sends `outgoing`. True when removed. */
  complete(seq: string, token: string, outgoing: readonly Outgoing[]): Promise<boolean> {
    return this.enqueue({ seq, token }, outgoing);
  }

  private enqueue(remove: Pending['remove'], outgoing: readonly Outgoing[]): Promise<boolean> {
    return new Promise<boolean>((resolve, reject) => {
      this.queue.push({ remove, outgoing, resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.scheduled = false;
    if (this.queue.length === 0 || this.inFlight >= this.maxInFlight) return;
    const group = this.queue;
    this.queue = [];
    this.inFlight++;
    void this.write(group).finally(() => {
      this.inFlight--;
      if (this.queue.length > 0 && !this.scheduled) this.flush();
    });
  }

  private async write(group: Pending[]): Promise<void> {
    try {
      const result = await this.run(this.sql, groupWriteValues(group, this.channel));
      const removed = new Set(result.rows[0]?.removed ?? []);
      for (const p of group) p.resolve(p.remove === undefined || removed.has(p.remove.seq));
    } catch (error) {
      for (const p of group) p.reject(error);
    }
  }
}
