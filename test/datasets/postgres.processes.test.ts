import { replicaProcessSuite } from './fixtures/process-suite.js';

await replicaProcessSuite('postgres');
