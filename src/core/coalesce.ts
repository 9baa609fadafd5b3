/**
 * Calls made in the same turn of the event loop handed to one `flush` together, each caller
 * getting its own result: many small writes (one per message) become one statement. `flush`
 * returns one result per item, in order; when it throws, every caller of that batch gets the error.
 */
export function coalesced<I, O>(flush: (items: I[]) => Promise<O[]>): (item: I) => Promise<O> {
  let pending: { item: I; resolve: (value: O) => void; reject: (error: unknown) => void }[] = [];
  const run = () => {
    const batch = pending;
    pending = [];
    flush(batch.map((p) => p.item)).then(
      (results) => batch.forEach((p, i) => p.resolve(results[i]!)),
      (error: unknown) => batch.forEach((p) => p.reject(error)),
    );
  };
  return (item) =>
    new Promise<O>((resolve, reject) => {
      if (pending.length === 0) setImmediate(run);
      pending.push({ item, resolve, reject });
    });
}
