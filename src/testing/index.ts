// `switchyard/testing`: test your handlers without infrastructure. Conformance suites for
// adapter authors (they need vitest) are in `switchyard/testing/conformance`.
export { testBus } from './harness.js';
export type { TestBus, TestEndpointOptions, DispatchedMessage } from './harness.js';
export { waitFor } from './wait.js';
