/**
 * Start-up as one list of named steps, each with what undoes it. Start runs the steps in order;
 * when one fails, the steps already started are undone in reverse and the start fails with the
 * first error. Stop undoes every started step in reverse; every undo runs even when an earlier
 * one failed, and their errors are returned together. So a failed start leaves nothing running
 * (no receive loop, no timer, no open connection), and stop is the exact mirror of start.
 */
import { asError } from './errors.js';
import type { Logger } from './logger.js';

export interface LifecycleStep {
  /** Names the step in logs: `transport`, `feature subscriptions: start`, ... */
  readonly name: string;
  start(): Promise<void> | void;
  /** Undoes `start`. `signal` aborting means "give up on graceful" (see Endpoint.stop). */
  undo?(signal: AbortSignal | undefined): Promise<void> | void;
}

export class Lifecycle {
  private readonly started: LifecycleStep[] = [];

  constructor(
    private readonly steps: readonly LifecycleStep[],
    private readonly logger: Logger,
  ) {}

  /** Runs every step; on a failure undoes the started ones (reverse) and rethrows. */
  async start(): Promise<void> {
    for (const step of this.steps) {
      try {
        await step.start();
      } catch (error) {
        const undoErrors = await this.stop(undefined);
        for (const undoError of undoErrors) this.logger.error({ err: undoError }, `undoing start-up after "${step.name}" failed: ${undoError.message}`);
        throw error;
      }
      this.started.push(step);
    }
  }

  /** Undoes the started steps in reverse order. Never throws: returns what failed. */
  async stop(signal: AbortSignal | undefined): Promise<Error[]> {
    const errors: Error[] = [];
    for (const step of this.started.splice(0).reverse()) {
      try {
        await step.undo?.(signal);
      } catch (error) {
        errors.push(asError(error));
      }
    }
    return errors;
  }
}
