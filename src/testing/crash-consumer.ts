/**
 * A consumer process for crash and pause tests. It builds a transport from SWITCHYARD_TRANSPORT
 * (`{"module": "<file url>", "factory": "<export>", "options": {...}}`), receives one message
 * from SWITCHYARD_QUEUE and prints `holding <message id>`. Then:
 * - without SWITCHYARD_COMPLETE_AFTER_MS it hangs until killed (crash tests);
 * - with it, after that many ms (frozen while the process is SIGSTOPped) it completes the message
 *   sending one message to SWITCHYARD_OUT_QUEUE, and prints `completed` or `failed <code>`.
 */
import type { Transport } from '../core/transport.js';

async function main(): Promise<void> {
  const spec = JSON.parse(process.env.SWITCHYARD_TRANSPORT ?? '{}') as { module: string; factory: string; options: unknown };
  const queue = process.env.SWITCHYARD_QUEUE ?? '';
  const completeAfter = process.env.SWITCHYARD_COMPLETE_AFTER_MS;
  const mod = (await import(spec.module)) as Record<string, (options: unknown) => Transport>;
  const transport = mod[spec.factory]!(spec.options);
  await transport.open();
  const signal = new AbortController().signal;
  for (;;) {
    const [receipt] = await transport.receive(queue, { max: 1, waitMs: 1000, signal });
    if (!receipt) continue;
    console.log(`holding ${receipt.message.id}`);
    if (completeAfter === undefined) {
      setInterval(() => undefined, 1 << 30);
      return;
    }
    setTimeout(() => {
      const id = `stale-${receipt.message.id}`;
      const out = { destination: process.env.SWITCHYARD_OUT_QUEUE ?? '', message: { id, headers: { 'sy1-message-id': id }, body: '{}' } };
      receipt.complete([out]).then(
        () => console.log('completed'),
        (error: { code?: string }) => console.log(`failed ${error.code ?? String(error)}`),
      ).finally(() => void transport.close());
    }, Number(completeAfter));
    return;
  }
}

void main();
