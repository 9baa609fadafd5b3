/**
 * `stopOnSignals(targets)`: the first SIGINT or SIGTERM stops every target gracefully (last
 * given first: stop the endpoints before the distributor they feed); a second one forces the
 * stop (handlers' signals abort, and after the endpoint's `stopGraceMs` the ones still running
 * are abandoned to come back by lease). It never calls process.exit: once stopped, an endpoint
 * leaves nothing running, so the process ends by itself unless the application keeps it alive.
 */
import { asError } from '../core/errors.js';
import { consoleLogger, type Logger } from '../core/logger.js';

export interface Stoppable {
  stop(options?: { signal?: AbortSignal }): Promise<void>;
}

export interface StopOnSignalsOptions {
  /** Default SIGINT and SIGTERM. */
  signals?: readonly NodeJS.Signals[];
  logger?: Logger;
  /** Called once every target stopped; `errors` is empty when all stopped cleanly. */
  onStopped?: (errors: readonly Error[]) => void;
}

/** Installs the handlers; the function it returns removes them. */
export function stopOnSignals(targets: readonly Stoppable[], options: StopOnSignalsOptions = {}): () => void {
  const signals = options.signals ?? ['SIGINT', 'SIGTERM'];
  const logger = options.logger ?? consoleLogger('shutdown');
  const force = new AbortController();
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) {
      logger.warn(`${signal} again: stopping forcefully`);
      force.abort(new Error(`${signal} received twice`));
      return;
    }
    stopping = true;
    logger.info(`${signal}: stopping gracefully (send it again to force)`);
    void (async () => {
      const errors: Error[] = [];
      for (const target of [...targets].reverse()) {
        try {
          await target.stop({ signal: force.signal });
        } catch (error) {
          errors.push(asError(error));
        }
      }
      remove();
      options.onStopped?.(errors);
    })();
  };
  const remove = () => {
    for (const signal of signals) process.off(signal, onSignal);
  };
  for (const signal of signals) process.on(signal, onSignal);
  return remove;
}
