/**
 * Routing of commands to logical endpoints, written in code:
 *   routes: { 'Sales.PlaceOrder': 'Sales', 'Billing.*': 'Billing' }
 * An exact type name wins over a namespace prefix (`Ns.*`); the longest prefix wins among prefixes.
 */
import { ErrorCodes, SwitchyardError } from './errors.js';
import { checkName, type EndpointName } from './identity.js';

export type Routes = Readonly<Record<string, EndpointName>>;

export class Router {
  private readonly exact = new Map<string, EndpointName>();
  private readonly prefixes: Array<[string, EndpointName]> = [];

  constructor(routes: Routes = {}) {
    for (const [pattern, endpoint] of Object.entries(routes)) {
      checkName(`Route target for ${pattern}`, endpoint);
      if (pattern.endsWith('.*')) this.prefixes.push([pattern.slice(0, -1), endpoint]);
      else if (pattern === '*') this.prefixes.push(['', endpoint]);
      else this.exact.set(pattern, endpoint);
    }
    this.prefixes.sort((a, b) => b[0].length - a[0].length);
  }

  /** The logical endpoint that owns `typeName`, if any route names it. */
  find(typeName: string): EndpointName | undefined {
    return this.exact.get(typeName) ?? this.prefixes.find(([prefix]) => typeName.startsWith(prefix))?.[1];
  }

  require(typeName: string): EndpointName {
    const endpoint = this.find(typeName);
    if (endpoint === undefined) {
      throw new SwitchyardError(ErrorCodes.NO_ROUTE, `No route for ${typeName}: Switchyard does not know which endpoint handles it.`, {
        fix: `Add routes: { '${typeName}': '<Endpoint>' } (or a namespace route such as '${typeName.split('.')[0]}.*') to this endpoint's options, or pass { to: '<Endpoint>' }.`,
      });
    }
    return endpoint;
  }
}
