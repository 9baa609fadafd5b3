/**
 * Signal handling lives only in the CLI: the first SIGINT/SIGTERM asks for a graceful stop, a
 * second one forces it (handlers' signals abort).
 */
export function onShutdown(stop: (force: AbortSignal) => Promise<void>): void {
  const force = new AbortController();
  let stopping = false;
  const handler = () => {
    if (stopping) {
      force.abort();
      return;
    }
    stopping = true;
    stop(force.signal).then(
      () => process.exit(0),
      (error: unknown) => {
        console.error(error);
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
}
