// `switchyard/testing`: test your handlers without infrastructure, on virtual time (docs/testing.md).
// Conformance suites for adapter authors (they need vitest) are in `switchyard/testing/conformance`.
export { testBus } from './harness.js';
export type { TestBus, TestBusOptions, TestEndpointOptions } from './harness.js';
export type { RecordedMessage, RecordedKind, InFlight } from './recorder.js';
export { TrackedSession } from './session.js';
export type { IdleReport, ScheduledDelivery } from './session.js';
export { VirtualClock, parseDuration } from './virtual-clock.js';
export { waitFor } from './wait.js';
