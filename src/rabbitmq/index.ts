// `switchyard/rabbitmq`: the RabbitMQ transport (amqplib is an optional peer dependency).
export { rabbitmqTransport } from './transport.js';
export type { RabbitMqTransport, RabbitMqTransportOptions } from './transport.js';
export type { ConnectionState, ConnectionStateChange } from './connection.js';
export { rabbitmqTopology } from './topology.js';
export type { QueueType } from './specs.js';
export type { WireFormat } from './wire.js';
export type { TopologyRequest, RabbitMqDefinitions } from './topology.js';
export { MAX_DELAY_MS } from './delay.js';
