/**
 * @opentelemetry/api, the optional peer dependency of this subpath, loaded the way every adapter
 * loads its client (src/core/peer-dependency.ts): missing, it is SY_ERR_PACKAGE_MISSING naming
 * the package, not Node's ERR_MODULE_NOT_FOUND. (Its CommonJS build: the API keeps its global
 * providers on a global symbol, so the application's ESM import of it sees the same ones.)
 */
import { loadPeerDependency } from '../core/peer-dependency.js';

export const api = loadPeerDependency<typeof import('@opentelemetry/api')>('@opentelemetry/api', 'switchyard/opentelemetry');
