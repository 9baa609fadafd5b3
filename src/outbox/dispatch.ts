/**
 * After the commit: sending an outbox record and removing it. And the durability agent, which
 * does the same for records whose writer died (or could not reach the broker) once their claim
 * has run out, on whichever instance is alive.
 */
import { systemClock } from '../core/clock.js';
import { asError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import type { Transport } from '../core/transport.js';
import type { Outbox, OutboxRecord } from './outbox.js';

/**
 * Sends each record and removes it; one that cannot be sent now stays for the agent. Never throws.
 * `checkClaim`: renew the claim right before sending and skip the record when it was lost (an
 * agent that was paused past its claim sends nothing its successor owns).
 */
export async function dispatchRecords(outbox: Outbox, transport: Transport, records: readonly OutboxRecord[], logger: Logger, checkClaim = false): Promise<void> {
  for (const record of records) {
    try {
      if (checkClaim && !(await outbox.store.renew(record, outbox.leaseMs))) {
        logger.warn({ outboxRecord: record.id }, `outbox record ${record.id}: the claim was lost to another instance before sending; left to it`);
        continue;
      }
      await transport.dispatch(record.batch);
    } catch (error) {
      logger.warn({ err: error, outboxRecord: record.id }, `outbox record ${record.id} could not be dispatched (${asError(error).message}); the durability agent sends it once its claim runs out (${outbox.leaseMs} ms)`);
      continue;
    }
    try {
      if (!(await outbox.store.remove(record))) {
        logger.warn({ outboxRecord: record.id }, `outbox record ${record.id} was dispatched after its claim ran out; another instance may send it again (receivers skip it by message id)`);
      }
    } catch (error) {
      logger.warn({ err: error, outboxRecord: record.id }, `outbox record ${record.id} was dispatched but not removed (${asError(error).message}); it is sent again after its claim runs out`);
    }
  }
}

/** Claims records whose claim ran out, dispatches them, and prunes the inbox now and then. */
export class DurabilityAgent {
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #stopped = false;
  #lastPrune = 0;

  constructor(
    private readonly outbox: Outbox,
    private readonly transport: Transport,
    /** This instance: the claimant named on what it claims. */
    private readonly owner: string,
    private readonly logger: Logger,
  ) {}

  start(): void {
    this.#schedule();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    await this.#running;
  }

  /** One pass: what a timer tick runs (exposed for tests that drive it). */
  async sweep(): Promise<number> {
    const { store } = this.outbox;
    let sent = 0;
    for (;;) {
      const records = await store.claimExpired(this.owner, this.outbox.leaseMs, 100);
      if (records.length === 0) break;
      await dispatchRecords(this.outbox, this.transport, records, this.logger, true);
      sent += records.length;
      if (records.length < 100 || this.#stopped) break;
    }
    if (sent > 0) this.logger.info(`outbox: dispatched ${sent} record(s) whose writer did not`);
    if (systemClock.now() - this.#lastPrune >= Math.min(this.outbox.inboxRetentionMs, 3_600_000)) {
      this.#lastPrune = systemClock.now();
      await store.pruneInbox(systemClock.now() - this.outbox.inboxRetentionMs);
    }
    return sent;
  }

  #schedule(): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => {
      this.#running = this.sweep()
        .catch((error: unknown) => this.logger.warn({ err: error }, `outbox durability agent: ${asError(error).message}; trying again in ${this.outbox.agentPollMs} ms`))
        .then(() => this.#schedule());
    }, this.outbox.agentPollMs);
  }
}
