/**
 * Header names, one place, with a wire-version prefix. Headers are data from the wire: code
 * that reads one validates it before use.
 */
export const Headers = {
  MessageId: 'sy1-message-id',
  Intent: 'sy1-intent',
  /** The message type and its ancestors, comma-separated, nearest first. */
  EnclosedTypes: 'sy1-enclosed-types',
  CorrelationId: 'sy1-correlation-id',
  ConversationId: 'sy1-conversation-id',
  RelatedTo: 'sy1-related-to',
  ReplyTo: 'sy1-reply-to',
  OriginatingEndpoint: 'sy1-originating-endpoint',
  OriginatingInstance: 'sy1-originating-instance',
  OriginatingHost: 'sy1-originating-host',
  TimeSent: 'sy1-time-sent',
  ContentType: 'sy1-content-type',
  DeliverAt: 'sy1-deliver-at',
  TraceParent: 'traceparent',
  TraceState: 'tracestate',
  /**
   * Set by the transport on a stored message it could not read as sent (src/core/wire-headers.ts):
   * what was wrong. The pipeline sends such a message to the error queue without processing it.
   */
  EnvelopeError: 'sy1-envelope-error',
  /** With EnvelopeError: the stored headers as read (cut short), for operators; never evaluated. */
  RawHeaders: 'sy1-envelope-raw-headers',
} as const;

/** How a message was sent. Control messages carry a kind a feature registered instead (`subscribe`, `ready`, ...). */
export type MessageIntent = 'send' | 'publish' | 'reply';
export const MESSAGE_INTENTS: readonly MessageIntent[] = ['send', 'publish', 'reply'];
/** The intent header: a message intent, or the control kind of a feature's control message. */
export type Intent = MessageIntent | (string & {});

export type HeaderMap = Record<string, string>;

export const JSON_CONTENT_TYPE = 'application/json';
