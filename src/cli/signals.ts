/**
 * The CLI's commands stop on the first SIGINT/SIGTERM and force on the second (stopOnSignals),
 * then exit with 0, or 1 when something failed to stop.
 */
import { stopOnSignals } from '../endpoint/shutdown.js';
import { silentLogger } from '../core/logger.js';

export function onShutdown(stop: (force: AbortSignal) => Promise<void>): void {
  const forced = new AbortController();
  stopOnSignals([{ stop: ({ signal } = {}) => stop(signal ?? forced.signal) }], {
    logger: silentLogger,
    onStopped: (errors) => {
      for (const error of errors) console.error(error);
      process.exit(errors.length > 0 ? 1 : 0);
    },
  });
}
