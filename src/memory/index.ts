export { memoryTransport, MemoryBroker } from './transport.js';
export type { MemoryTransportOptions } from './transport.js';
