/**
 * What application code uses to send: the endpoint itself outside handlers, and the handler
 * context inside them (where sends are batched and leave only when the handler succeeds).
 */
import type { HeaderMap } from './headers.js';
import type { EndpointName } from './identity.js';
import type { Logger } from './logger.js';
import type { StorageSession } from './transport.js';
import type {
  CommandDefinition,
  EventDefinition,
  MessageDefinition,
  PlainMessageDefinition,
} from './messages.js';

export interface SendOptions {
  /** Deliver no earlier than this (needs a transport with delayed delivery). */
  deliverAt?: Date | number;
  /** Deliver after this many milliseconds. */
  delayMs?: number;
  /** Extra headers; standard `sy1-*` headers cannot be overridden. */
  headers?: HeaderMap;
  correlationId?: string;
  /** Send to this logical endpoint instead of the routed one. */
  to?: EndpointName;
  /** A message id of your own (e.g. for idempotent re-sends); must be unique. */
  messageId?: string;
}

export type PublishOptions = Omit<SendOptions, 'to'>;

export interface MessageSender {
  /** Sends a command to the one logical endpoint that owns it. */
  send<B>(definition: CommandDefinition<B> | PlainMessageDefinition<B>, body: NoInfer<B>, options?: SendOptions): Promise<void>;
  /** Sends to this endpoint's own address (through its distributor when it has one). */
  sendLocal<B>(definition: CommandDefinition<B> | PlainMessageDefinition<B>, body: NoInfer<B>, options?: SendOptions): Promise<void>;
  /** Publishes an event: one copy to each logical subscriber. */
  publish<B>(definition: EventDefinition<B>, body: NoInfer<B>, options?: PublishOptions): Promise<void>;
}

export interface HandlerContext extends MessageSender {
  readonly messageId: string;
  /** The incoming message's headers. */
  readonly headers: Readonly<HeaderMap>;
  /** The type name this handler was selected for. */
  readonly messageType: string;
  /** Attempts of this message in the current round of immediate retries, this one included (1 = first). */
  readonly deliveryCount: number;
  /** Fires when the endpoint stops forcefully or the message's lease is lost: give up cleanly. */
  readonly signal: AbortSignal;
  /**
   * The unit of work: the storage session the handler's own writes join, committed together with
   * the completion of this message and its sends (undefined where the transport has none). Use
   * the storage's accessor rather than this: `sqliteSession(ctx)` from `switchyard/sqlite`.
   */
  readonly unitOfWork: StorageSession | undefined;
  /** The endpoint's logger with this message's fields (messageId, type, endpoint, traceId) on every line. */
  readonly logger: Logger;
  /** Sends a reply to the incoming message's reply-to address. */
  reply<B>(definition: PlainMessageDefinition<B>, body: NoInfer<B>, options?: PublishOptions): Promise<void>;
}

export type HandlerFunction<B> = (message: B, context: HandlerContext) => void | Promise<void>;

/** A handler bound to its message definition; create with `handle()`. */
export interface Handler {
  readonly definition: MessageDefinition;
  invoke(message: unknown, context: HandlerContext): Promise<void>;
}

/** Binds a handler to a message definition; the message parameter's type comes from the definition. */
export function handle<B>(definition: MessageDefinition<B>, fn: HandlerFunction<B>): Handler {
  return {
    definition,
    async invoke(message, context) {
      await fn(message as B, context);
    },
  };
}
