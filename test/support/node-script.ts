/**
 * How to start a TypeScript script of this repository as its own process. From sources (vitest,
 * tsx) it runs through tsx; from the compiled tree the benchmarks run (`npm run bench` compiles
 * with tsc into .bench/), it runs the emitted JavaScript directly, so a child process measures
 * the same code as its parent. (tsx compiles with esbuild's keepNames, which wraps every closure
 * a hot path creates in a naming call: about a tenth of the bus's CPU per message in-process.)
 */
import { fileURLToPath } from 'node:url';

export interface NodeScript {
  /** Node options to pass before the script (`--import tsx` from sources, none compiled). */
  readonly execArgv: readonly string[];
  readonly script: string;
}

/** `relative`: the `.ts` path from the calling module; `from`: its `import.meta.url`. */
export function nodeScript(relative: string, from: string): NodeScript {
  const fromSource = from.endsWith('.ts');
  const script = fileURLToPath(new URL(fromSource ? relative : relative.replace(/\.ts$/, '.js'), from));
  return { execArgv: fromSource ? ['--import', 'tsx'] : [], script };
}
