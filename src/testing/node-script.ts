/**
 * How to start a TypeScript file of this package as its own process: from sources (tests, tsx)
 * through tsx; from compiled JavaScript (dist/, or the benchmarks' tsc build in .bench/) the
 * emitted sibling file directly, so a child runs the same code as its parent. (tsx compiles with
 * esbuild's keepNames, which wraps every closure a hot path creates in a naming call: about a
 * tenth of the bus's CPU per message in-process, so benchmarks must not mix the two.)
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
