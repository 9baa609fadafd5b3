/**
 * Attribute names: the OpenTelemetry messaging semantic conventions where they have one, and a
 * `switchyard.*` namespace for what they do not name (message type, handler, retry counts).
 * Written out here rather than imported, so the adapter needs @opentelemetry/api only.
 */
export const Attr = {
  System: 'messaging.system',
  DestinationName: 'messaging.destination.name',
  OperationType: 'messaging.operation.type',
  OperationName: 'messaging.operation.name',
  MessageId: 'messaging.message.id',
  ConversationId: 'messaging.message.conversation_id',
  ConsumerGroup: 'messaging.consumer.group.name',
  ClientId: 'messaging.client.id',
  BatchCount: 'messaging.batch.message_count',
  ErrorType: 'error.type',
  MessageType: 'switchyard.message.type',
  Attempt: 'switchyard.message.attempt',
  DelayedRetries: 'switchyard.message.delayed_retries',
  Handler: 'switchyard.handler',
  Outcome: 'switchyard.outcome',
  RetryKind: 'switchyard.retry.kind',
  RetryDelayMs: 'switchyard.retry.delay_ms',
  ErrorQueue: 'switchyard.error_queue',
  DataQueue: 'switchyard.distributor.data_queue',
  WorkerSession: 'switchyard.distributor.session',
  DatasetName: 'switchyard.dataset.name',
  DatasetReplica: 'switchyard.dataset.replica',
  DatasetBackend: 'switchyard.dataset.backend',
} as const;

/** Span event names. */
export const SpanEvents = {
  Retry: 'switchyard.retry',
  ErrorQueue: 'switchyard.error_queue',
  Discarded: 'switchyard.discarded',
  LeaseLost: 'switchyard.lease_lost',
  Unsettled: 'switchyard.unsettled',
} as const;

/** Metric instrument names (see docs/observability.md). */
export const Metrics = {
  ProcessDuration: 'messaging.process.duration',
  SentMessages: 'messaging.client.sent.messages',
  ConsumedMessages: 'messaging.client.consumed.messages',
  CriticalTime: 'switchyard.message.critical_time',
  Retries: 'switchyard.message.retries',
  ErrorQueueMoves: 'switchyard.message.error_queue_moves',
  QueueDepth: 'switchyard.queue.depth',
  DatasetVersionsBehind: 'switchyard.dataset.replica.versions_behind',
  DatasetTimeBehind: 'switchyard.dataset.replica.time_behind',
} as const;
