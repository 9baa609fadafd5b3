/** The operator's view of the SQLite queues (the errors CLI, the distributor status, dashboards). */
import type { Address } from '../core/identity.js';
import type { Outgoing, QueueAdmin } from '../core/transport.js';
import type { GroupCommitter } from './database.js';
import { toMessage, type QueueTable } from './queue-table.js';

export interface OpenQueues {
  readonly table: QueueTable;
  readonly committer: GroupCommitter;
  /** After a commit that made messages available in `queues`: wakes their receivers. */
  notify(queues: readonly Address[]): void;
  /** After a commit that made `batch` available. */
  notifyDestinations(batch: readonly Outgoing[]): void;
}

/** `opened` throws SY_ERR_NOT_RUNNING while the transport is not open. */
export function sqliteQueueAdmin(opened: () => OpenQueues): QueueAdmin {
  return {
    async depth(address) {
      return opened().table.depth(address);
    },
    async queues() {
      return opened().table.queues();
    },
    async schedule(address) {
      return opened().table.schedule(address).map((row) => ({ message: toMessage(row), visibleAt: row.visible_at }));
    },
    async peek(address, { offset, limit }) {
      return opened().table.peek(address, offset, limit).map(toMessage);
    },
    async take(address, ids, replacements) {
      const { table, committer, notifyDestinations } = opened();
      const taken = await committer.run(() => {
        const rows = table.rowsWithIds(address, ids);
        const outgoing = table.replaceRows(rows, (message) => replacements?.(message) ?? []);
        return { ids: [...new Set(rows.map((row) => toMessage(row).id))], outgoing };
      });
      notifyDestinations(taken.outgoing);
      return taken.ids;
    },
    async moveAll(from, to, moveOptions = {}) {
      const { table, committer, notify } = opened();
      const moved = await committer.run(() => table.moveAll(from, to, moveOptions.includeLeased === true));
      notify([to]);
      return moved;
    },
  };
}
