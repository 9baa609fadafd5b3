/**
 * The error catalogue. Every error Switchyard raises carries a stable `code` and, where there
 * is one, a `fix`: the next step for the reader. Codes are never reused; `docs/errors.md`
 * documents each one and a test keeps the two in sync.
 */
export const ErrorCodes = {
  /** Endpoint or adapter options are missing or wrong. */
  CONFIG: 'SY_ERR_CONFIG',
  /** A message type name is not registered with the endpoint. */
  UNKNOWN_MESSAGE_TYPE: 'SY_ERR_UNKNOWN_MESSAGE_TYPE',
  /** No route for a command's type. */
  NO_ROUTE: 'SY_ERR_NO_ROUTE',
  /** A command was published, or an event was sent. */
  WRONG_INTENT: 'SY_ERR_WRONG_INTENT',
  /** reply() was called outside a handler or the incoming message had no reply-to. */
  NO_REPLY_ADDRESS: 'SY_ERR_NO_REPLY_ADDRESS',
  /** A body or its headers exceed the configured limits. */
  MESSAGE_TOO_LARGE: 'SY_ERR_MESSAGE_TOO_LARGE',
  /** A body is not valid JSON or carries a forbidden key. */
  MALFORMED_MESSAGE: 'SY_ERR_MALFORMED_MESSAGE',
  /** A body failed its message definition's schema. */
  VALIDATION_FAILED: 'SY_ERR_VALIDATION_FAILED',
  /** A message arrived that this endpoint has no handler for. */
  NO_HANDLER: 'SY_ERR_NO_HANDLER',
  /** A header needed to process a message is missing or invalid. */
  INVALID_HEADER: 'SY_ERR_INVALID_HEADER',
  /** The receipt's lease expired and another consumer may hold the message. */
  LEASE_LOST: 'SY_ERR_LEASE_LOST',
  /** An operation needs a started endpoint, or the endpoint is stopping. */
  NOT_RUNNING: 'SY_ERR_NOT_RUNNING',
  /** A transport or store cannot be reached or refused an operation. */
  TRANSPORT: 'SY_ERR_TRANSPORT',
  /** A queue does not exist. */
  QUEUE_NOT_FOUND: 'SY_ERR_QUEUE_NOT_FOUND',
  /** A database schema is newer than this code understands. */
  SCHEMA_TOO_NEW: 'SY_ERR_SCHEMA_TOO_NEW',
  /** A handler asked for no retries (UnrecoverableError). */
  UNRECOVERABLE: 'SY_ERR_UNRECOVERABLE',
  /** A dataset compare-and-set write found a different version than `ifVersion`. */
  DATASET_CONFLICT: 'SY_ERR_DATASET_CONFLICT',
  /** A dataset replica could not confirm it is current within its staleness bound and refuses reads. */
  DATASET_STALE: 'SY_ERR_DATASET_STALE',
  /** A staged dataset change cannot be activated (rejected, timed out, expired or aborted). */
  DATASET_STAGE: 'SY_ERR_DATASET_STAGE',
  /** A dataset was used after close(). */
  DATASET_CLOSED: 'SY_ERR_DATASET_CLOSED',
  /** A dataset store returned a record or entry this code cannot read. */
  DATASET_CORRUPT: 'SY_ERR_DATASET_CORRUPT',
  /** A subscribe or unsubscribe reached an endpoint that does not publish that event type. */
  NOT_PUBLISHER: 'SY_ERR_NOT_PUBLISHER',
  /** The instance-mapping file is missing, unreadable or not in the documented format. */
  INSTANCE_MAPPING: 'SY_ERR_INSTANCE_MAPPING',
  /** A broker refused the credentials or the user lacks permissions on the virtual host. */
  ACCESS_REFUSED: 'SY_ERR_ACCESS_REFUSED',
  /** A queue or exchange already exists with different settings (e.g. classic vs quorum). */
  TOPOLOGY_CONFLICT: 'SY_ERR_TOPOLOGY_CONFLICT',
  /** A distributor's ready message is malformed, from an unknown worker, or has a missing or wrong capacity. */
  READY_INVALID: 'SY_ERR_READY_INVALID',
  /** Another distributor already runs for this logical endpoint on the same store. */
  DISTRIBUTOR_RUNNING: 'SY_ERR_DISTRIBUTOR_RUNNING',
  DISTRIBUTOR_FENCED: 'SY_ERR_DISTRIBUTOR_FENCED',
  /** A message id is not in the queue an operation looked in (e.g. the error queue). */
  MESSAGE_NOT_FOUND: 'SY_ERR_MESSAGE_NOT_FOUND',
  /** A handler asked for a storage session its endpoint's transport does not give (sqliteSession on another transport). */
  NO_UNIT_OF_WORK: 'SY_ERR_NO_UNIT_OF_WORK',
  /** A handler's own write failed when its unit of work committed: nothing of the unit happened. */
  UNIT_OF_WORK_FAILED: 'SY_ERR_UNIT_OF_WORK_FAILED',
  /** An endpoint handles events on a transport without native pub/sub, but nothing subscribes it to them. */
  NOT_SUBSCRIBED: 'SY_ERR_NOT_SUBSCRIBED',
  /** An optional peer dependency (a broker or database client) is not installed. */
  PACKAGE_MISSING: 'SY_ERR_PACKAGE_MISSING',
  /** The test bus did not settle: a handler never finished, or a due message was never received. */
  TEST_BUS_NOT_IDLE: 'SY_ERR_TEST_BUS_NOT_IDLE',
  /** A test bus stopped with messages in an error queue that the test did not allow. */
  TEST_BUS_FAILED_MESSAGES: 'SY_ERR_TEST_BUS_FAILED_MESSAGES',
} as const;

export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes];

export interface SwitchyardErrorOptions extends ErrorOptions {
  /** What the reader should do next. */
  fix?: string;
}

export class SwitchyardError extends Error {
  readonly code: ErrorCode;
  readonly fix: string | undefined;

  constructor(code: ErrorCode, message: string, options: SwitchyardErrorOptions = {}) {
    super(options.fix ? `${message} Fix: ${options.fix}` : message, options);
    this.name = 'SwitchyardError';
    this.code = code;
    this.fix = options.fix;
  }
}

/**
 * Throw this from a handler when retrying cannot help (bad input, a business rule that will
 * never pass): the message goes to the error queue at once.
 */
export class UnrecoverableError extends SwitchyardError {
  constructor(message: string, options: SwitchyardErrorOptions = {}) {
    super(ErrorCodes.UNRECOVERABLE, message, options);
    this.name = 'UnrecoverableError';
  }
}

export function isSwitchyardError(error: unknown, code?: ErrorCode): error is SwitchyardError {
  return error instanceof SwitchyardError && (code === undefined || error.code === code);
}

/** Turns anything thrown into an Error, so failure headers always have a type and a message. */
export function asError(thrown: unknown): Error {
  if (thrown instanceof Error) return thrown;
  return new Error(typeof thrown === 'string' ? thrown : JSON.stringify(thrown));
}
