// The public API of `switchyard`. Technology adapters are subpath exports
// (`switchyard/sqlite`, `switchyard/memory`, ...); nothing here imports one.
export { defineCommand, defineEvent, defineMessage, MessageRegistry, enclosedTypes } from './core/messages.js';
export type {
  MessageDefinition,
  CommandDefinition,
  EventDefinition,
  PlainMessageDefinition,
  MessageKind,
  BodyOf,
  DefinitionOptions,
  EventOptions,
} from './core/messages.js';
export { handle } from './core/context.js';
export type { Handler, HandlerContext, HandlerFunction, MessageSender, SendOptions, PublishOptions } from './core/context.js';
export { createEndpoint } from './endpoint/endpoint.js';
export { stopOnSignals } from './endpoint/shutdown.js';
export type { Stoppable, StopOnSignalsOptions } from './endpoint/shutdown.js';
export type { Endpoint, EndpointOptions, EndpointStatus } from './endpoint/endpoint.js';
export type { EndpointHealth } from './endpoint/health.js';
export { SwitchyardError, UnrecoverableError, ErrorCodes, isSwitchyardError } from './core/errors.js';
export type { ErrorCode } from './core/errors.js';
export { Headers } from './core/headers.js';
export type { HeaderMap, Intent, MessageIntent } from './core/headers.js';
export { HANDLER_STEPS, INCOMING_STEPS, OUTGOING_STEPS } from './core/pipeline.js';
export type { Behaviour, HandlerInvocation, HandlerStepName, IncomingContext, IncomingStepName, OutgoingContext, OutgoingStepName, Settlement, Step } from './core/pipeline.js';
export { consoleLogger, lineLogger, silentLogger, withFields } from './core/logger.js';
export type { LogFields, Logger, LogLevel, LogMethod } from './core/logger.js';
export { systemClock } from './core/clock.js';
export type { Clock } from './core/clock.js';
export type { Address, EndpointName, InstanceIdentity } from './core/identity.js';
export type { Routes } from './core/routing.js';
export type { MessageLimits } from './core/envelope.js';
export type { StandardSchemaV1 } from './core/standard-schema.js';
export type {
  Transport,
  TransportCapabilities,
  TransportMessage,
  Receipt,
  StorageSession,
  ReceiveOptions,
  Outgoing,
  QueueOutgoing,
  TopicOutgoing,
  QueueAdmin,
} from './core/transport.js';
export type { EndpointFeature, FeatureHost, SettleOutcome, ControlContext } from './core/feature.js';
export { subscriptions } from './pubsub/subscriptions.js';
export type { Subscriptions, SubscriptionsOptions } from './pubsub/subscriptions.js';
export type { SubscriptionStore, Subscription, SubscriptionKey } from './pubsub/store.js';
export { WHOLE_ENDPOINT } from './pubsub/store.js';
export { SubscriptionHeaders } from './pubsub/protocol.js';
export { memorySubscriptionStore } from './pubsub/memory-store.js';
export { instanceMapping } from './scaleout/instance-mapping.js';
export type { InstanceMapping, InstanceMappingOptions } from './scaleout/instance-mapping.js';
export { openDataset, openReplicas } from './datasets/index.js';
export type {
  Dataset,
  DatasetOp,
  DatasetOptions,
  DatasetStatus,
  WriteOptions,
  DatasetChange,
  Entry,
  KeyChange,
  StageValidator,
  Convergence,
  ReplicaStatus,
  StageOptions,
  StageOutcome,
  StagedChange,
  DatasetStore,
  ObservedReplica,
  ReplicaLag,
} from './datasets/index.js';
export { startDistributor } from './scaleout/distributor.js';
export type { DistributorOptions, DistributorHandle, DistributorStatus } from './scaleout/distributor.js';
export { distributorWorker } from './scaleout/worker.js';
export type { DistributorWorkerOptions } from './scaleout/worker.js';
export { hostedDistributor } from './scaleout/distributor-feature.js';
export type { HostedDistributorOptions } from './scaleout/distributor-feature.js';
export { memoryDistributorStore } from './scaleout/distributor-store.js';
export type { DistributorStore, StoredDistributorState, OwnershipClaim } from './scaleout/distributor-store.js';
export type { WorkerRecord, SlotRecord, StateChange, WorkerStatus, WorkerView } from './scaleout/distributor-state.js';
export { DistributorHeaders, controlAddress as distributorControlAddress } from './scaleout/distributor-protocol.js';
export { FailureHeaders } from './recoverability/failure-headers.js';
export type { RecoverabilityOptions, RecoverabilityAction, FailureInfo } from './recoverability/policy.js';
export { failedMessages } from './recoverability/failed-messages.js';
export type { FailedMessages, FailedMessagesOptions, FailedMessageOutcome, FailedMessagePage, ListOptions as FailedMessageListOptions } from './recoverability/failed-messages.js';
export type { FailedMessage, FailedMessageSummary, FailedMessageFilter } from './recoverability/failed-message.js';
export { healthServer } from './health/server.js';
export type { HealthServer, HealthServerOptions } from './health/server.js';
export { heartbeats, readHeartbeats, DEFAULT_HEARTBEAT_QUEUE } from './health/heartbeats.js';
export type { Heartbeat, HeartbeatOptions } from './health/heartbeats.js';
