/**
 * Loading an adapter's client library, an optional peer dependency the application installs
 * (`switchyard/rabbitmq` needs amqplib, ...). Node's own error for a missing one
 * (ERR_MODULE_NOT_FOUND, thrown while importing the subpath) names neither the adapter nor the
 * fix; this one does. It knows no technology: the adapter passes the package's name.
 *
 * The clients are CommonJS packages, so `require` loads them synchronously when the adapter
 * module is imported, exactly when a static import would have failed.
 */
import { createRequire } from 'node:module';
import { ErrorCodes, SwitchyardError } from './errors.js';

const requireFromHere = createRequire(import.meta.url);

/** Returns `packageName`'s exports; fails with SY_ERR_PACKAGE_MISSING when it is not installed. */
export function loadPeerDependency<T>(packageName: string, neededBy: string, load: (name: string) => unknown = requireFromHere): T {
  try {
    return load(packageName) as T;
  } catch (error) {
    const e = error as { code?: string; message?: string };
    // Only the package itself missing; a broken install (one of its own files missing) keeps its own error.
    const missing = e.code === 'MODULE_NOT_FOUND' && (e.message ?? '').includes(`'${packageName}'`);
    if (!missing) throw error;
    throw new SwitchyardError(ErrorCodes.PACKAGE_MISSING, `${neededBy} needs the package ${packageName}, which is not installed (it is an optional peer dependency of switchyard).`, {
      fix: `Install it in your application: npm install ${packageName}`,
      cause: error,
    });
  }
}
