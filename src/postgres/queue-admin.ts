/** The QueueAdmin of the PostgreSQL transport: what the errors CLI and the distributor status read and move. */
import type pg from 'pg';
import type { Outgoing, QueueAdmin } from '../core/transport.js';
import { MAX_ID_CHARS } from '../core/wire-headers.js';
import { inTransaction, NOW_MS, unreachable } from './pool.js';
import { statements, toMessage, TOKEN_FLOOR, type PostgresQueueTable, type QueueTableSettings, type Row } from './queue-table.js';
import { groupWriteValues } from './write-batcher.js';

/** Operator views of the queues (the errors CLI, the distributor status), on the table of an open transport. */
export function postgresQueueAdmin({ s, channel, where }: QueueTableSettings, opened: () => PostgresQueueTable): QueueAdmin {
  const query = <R extends pg.QueryResultRow>(text: string, values: unknown[]) => opened().query<R>(text, values);
  const checkDestinations = (batch: readonly Outgoing[]) => opened().checkDestinations(batch);
  const groupWrite = statements(s).groupWrite;
  return {
    async depth(address) {
      return Number((await query<{ n: string }>(`SELECT count(*) AS n FROM ${s}.messages WHERE queue = $1`, [address])).rows[0]?.n ?? 0);
    },
    async queues() {
      return (await query<{ name: string }>(`SELECT name FROM ${s}.queues ORDER BY name`, [])).rows.map((r) => r.name);
    },
    async peek(address, { offset, limit }) {
      await checkDestinations([{ destination: address, message: { id: '', headers: {}, body: '' } }]);
      const { rows } = await query<Row>(`SELECT seq, id, headers, body FROM ${s}.messages WHERE queue = $1 ORDER BY seq LIMIT $2 OFFSET $3`, [address, limit, offset]);
      return rows.map(toMessage);
    },
    async take(address, ids, replacements) {
      // A row whose id column is not a usable id goes by the id toMessage gives it (its header's
      // message id, or row-<seq>): such rows are selected too and matched on that id here.
      const seqs = ids.flatMap((id) => (/^row-\d{1,15}$/.test(id) ? [id.slice(4)] : []));
      const wanted = new Set(ids);
      return inTransaction(opened().pool, async (client) => {
        const rows = (await client.query<Row>(
          `SELECT seq, id, headers, body FROM ${s}.messages WHERE queue = $1 AND (id = ANY($2::text[]) OR id = '' OR length(id) > ${MAX_ID_CHARS}
           OR seq = ANY($3::bigint[])) ORDER BY seq FOR UPDATE`, [address, [...ids], seqs],
        )).rows.filter((row) => wanted.has(toMessage(row).id));
        const outgoing = rows.flatMap((row) => replacements?.(toMessage(row)) ?? []);
        await checkDestinations(outgoing);
        await client.query(`DELETE FROM ${s}.messages WHERE seq = ANY($1::bigint[])`, [rows.map((r) => r.seq)]);
        if (outgoing.length > 0) await client.query(groupWrite, groupWriteValues([{ remove: undefined, outgoing }], channel));
        return [...new Set(rows.map((row) => toMessage(row).id))];
      }).catch((error: unknown) => {
        throw unreachable(error, where);
      });
    },
    async moveAll(from, to, moveOptions = {}) {
      await checkDestinations([{ destination: to, message: { id: '', headers: {}, body: '' } }]);
      const unheld = moveOptions.includeLeased ? '' : `AND (visible_at <= ${NOW_MS} OR lease_token = 0)`;
      const moved = await query<{ n: number }>(
        `WITH u AS (UPDATE ${s}.messages SET queue = $2, visible_at = ${NOW_MS}, lease_token = greatest(lease_token + 1, ${TOKEN_FLOOR}) WHERE queue = $1 ${unheld} RETURNING 1)
         SELECT count(*)::int AS n, pg_notify($3, $2) FROM u`, [from, to, channel]);
      return moved.rows[0]?.n ?? 0;
    },
  };
}
