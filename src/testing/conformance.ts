// `switchyard/testing/conformance`: the suites every adapter passes. Each is a function taking a
// fixture factory; they define vitest tests, so vitest is needed to use them.
export { transportConformance } from './transport-conformance.js';
export type { TransportFixture } from './transport-conformance.js';
export { recoverabilityConformance } from './recoverability-conformance.js';
export { subscriptionStoreConformance } from './subscription-store-conformance.js';
export type { SubscriptionStoreFixture } from './subscription-store-conformance.js';
export { datasetStoreConformance } from './dataset-conformance.js';
export type { DatasetStoreFixture } from './dataset-conformance.js';
