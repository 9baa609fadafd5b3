/**
 * The context a handler gets. One per handler call, so a class rather than a literal of closures.
 * The send methods are made on first use and bound, so `(message, { reply }) => reply(...)`
 * works as with plain properties. Its state is private (#): logging or serialising a context
 * shows what a handler sees, not the endpoint's internals.
 */
import type { HandlerContext } from '../core/context.js';
import type { HeaderMap } from '../core/headers.js';
import type { Logger } from '../core/logger.js';
import type { StorageSession } from '../core/transport.js';
import type { IncomingContext } from '../core/pipeline.js';
import type { OutgoingBuilder } from './outgoing.js';

/** What a handler's context reads of the message being handled (the incoming pipeline's IncomingMessage). */
export type HandledMessage = Pick<IncomingContext, 'message' | 'attempts' | 'signal' | 'unitOfWork' | 'logger'> & { readonly sends: OutgoingBuilder };

export class MessageHandlerContext implements HandlerContext {
  readonly #incoming: HandledMessage;
  #methods: Pick<HandlerContext, 'send' | 'sendLocal' | 'publish' | 'reply'> | undefined;
  #logger: Logger | undefined;

  constructor(
    incoming: HandledMessage,
    readonly messageType: string,
  ) {
    this.#incoming = incoming;
  }

  get messageId(): string {
    return this.#incoming.message.id;
  }

  get headers(): Readonly<HeaderMap> {
    return this.#incoming.message.headers;
  }

  get deliveryCount(): number {
    return this.#incoming.attempts;
  }

  get signal(): AbortSignal {
    return this.#incoming.signal;
  }

  get unitOfWork(): StorageSession | undefined {
    return this.#incoming.unitOfWork;
  }

  get logger(): Logger {
    return (this.#logger ??= this.#incoming.logger);
  }

  get send(): HandlerContext['send'] {
    return this.#bound().send;
  }

  get sendLocal(): HandlerContext['sendLocal'] {
    return this.#bound().sendLocal;
  }

  get publish(): HandlerContext['publish'] {
    return this.#bound().publish;
  }

  get reply(): HandlerContext['reply'] {
    return this.#bound().reply;
  }

  toJSON() {
    return { messageId: this.messageId, messageType: this.messageType, deliveryCount: this.deliveryCount, headers: this.headers };
  }

  #bound() {
    const incoming = this.#incoming;
    return (this.#methods ??= {
      send: (definition, body, options) => incoming.sends.send(definition, body, options),
      sendLocal: (definition, body, options) => incoming.sends.sendLocal(definition, body, options),
      publish: (definition, body, options) => incoming.sends.publish(definition, body, options),
      reply: (definition, body, options) => incoming.sends.reply(definition, body, options),
    });
  }
}
