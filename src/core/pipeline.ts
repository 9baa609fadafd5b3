/**
 * Pipelines: a message passes through an ordered list of named steps, each an async function of
 * a typed context and `next` (the rest of the list). A step does its work before and/or after
 * `await next()`, or ends the message's path by not calling it; a throw unwinds to the steps
 * before it. The endpoint writes its built-in lists out once (src/endpoint/incoming.ts and
 * outgoing.ts); users add behaviours before or after a named built-in step.
 */
import type { Handler, HandlerContext } from './context.js';
import { ErrorCodes, SwitchyardError } from './errors.js';
import type { HeaderMap, MessageIntent } from './headers.js';
import type { Address, InstanceIdentity } from './identity.js';
import type { Logger } from './logger.js';
import type { MessageDefinition } from './messages.js';
import type { Outgoing, Receipt, StorageSession, TransportMessage } from './transport.js';

export type Step<C> = (context: C, next: () => Promise<void>) => Promise<void>;

export interface PipelineStep<C> {
  readonly name: string;
  readonly run: Step<C>;
}

/** The built-in steps of the incoming pipeline, in order (see docs/pipeline.md). */
export const INCOMING_STEPS = ['settle', 'decode', 'control', 'validate', 'unit-of-work', 'invoke'] as const;
/** The built-in steps of the outgoing pipeline, in order. */
export const OUTGOING_STEPS = ['route', 'headers', 'serialize', 'dispatch'] as const;
/** The built-in step of the handler pipeline, which `invoke` runs once per handler: calling it. */
export const HANDLER_STEPS = ['handler'] as const;

export type IncomingStepName = (typeof INCOMING_STEPS)[number];
export type OutgoingStepName = (typeof OUTGOING_STEPS)[number];
export type HandlerStepName = (typeof HANDLER_STEPS)[number];

/**
 * How `settle` ended a message: handled; a retry or the error queue after a failure (`error` is
 * what was thrown); `discarded` by the policy; `lease-lost` (fenced off: another consumer has it);
 * `unsettled` (settling failed: the message comes back after its lease).
 */
export interface Settlement {
  readonly outcome: 'handled' | 'immediate-retry' | 'delayed-retry' | 'error-queue' | 'discarded' | 'lease-lost' | 'unsettled';
  readonly error?: Error;
  /** delayed-retry: how long until the message comes back. */
  readonly delayMs?: number;
}

/** What every incoming step sees: one per received message. */
export interface IncomingContext {
  /** The message as the transport delivered it (headers are data: validate before use). */
  readonly message: TransportMessage;
  readonly receipt: Receipt;
  /** The queue it came from. */
  readonly queue: Address;
  readonly endpoint: InstanceIdentity;
  /** Attempts in this round of immediate retries, this one included (1 = first). */
  readonly attempts: number;
  /** Aborts when the lease is lost or the endpoint stops forcefully. */
  readonly signal: AbortSignal;
  /** Set by `decode`: the enclosed type names, nearest first. */
  readonly types: readonly string[];
  /** Set by `validate`: the definition selected and the parsed, validated body. */
  readonly definition: MessageDefinition | undefined;
  readonly body: unknown;
  /** Set by `unit-of-work`: the storage session the handlers' own writes join, where there is one. */
  readonly unitOfWork: StorageSession | undefined;
  /** What leaves with the commit: the handlers' sends so far. */
  readonly outgoing: readonly Outgoing[];
  /** Set by `settle` once it is done: how the message ended. Steps placed before `settle` read it after `next()`. */
  readonly settlement: Settlement | undefined;
  /** The endpoint's logger with this message's fields on every line: messageId, type, endpoint, traceId. */
  readonly logger: Logger;
}

/** What a handler step sees: one per handler called for a message (see HANDLER_STEPS). */
export interface HandlerInvocation {
  readonly incoming: IncomingContext;
  /** The type name the handler was registered for. */
  readonly messageType: string;
  readonly handler: Handler;
  /** The context the handler is called with. */
  readonly context: HandlerContext;
}

/** What every outgoing step sees: one per send, publish or reply. */
export interface OutgoingContext {
  readonly definition: MessageDefinition;
  readonly intent: MessageIntent;
  /** The body as given (validated by the definition's schema, when it has one). */
  readonly body: unknown;
  /** Headers of the message being built: behaviours before `headers` may add their own (not `sy1-*`). */
  readonly headers: HeaderMap;
  /** The message being handled when the send comes from a handler; undefined outside handlers. */
  readonly incoming: TransportMessage | undefined;
  /** Set by `route`: where the message goes (queues, or a topic on native pub/sub). */
  readonly destinations: readonly ({ destination: Address } | { topic: string })[];
  /** Set by `serialize`. */
  readonly message: TransportMessage | undefined;
  readonly deliverAt: number | undefined;
}

/** A user behaviour: a step placed before or after one built-in step. */
export type Behaviour =
  | ({ readonly pipeline: 'incoming'; readonly run: Step<IncomingContext> } & Placement<IncomingStepName>)
  | ({ readonly pipeline: 'outgoing'; readonly run: Step<OutgoingContext> } & Placement<OutgoingStepName>)
  | ({ readonly pipeline: 'handler'; readonly run: Step<HandlerInvocation> } & Placement<HandlerStepName>);

type Placement<N> = { readonly name: string } & ({ readonly before: N; readonly after?: never } | { readonly after: N; readonly before?: never });

/**
 * The built-in list with the behaviours placed: each before or after the built-in step it
 * names, several at one place in the order given. Refuses an unknown step name.
 */
export function arrange<C>(builtIn: readonly PipelineStep<C>[], behaviours: readonly { name: string; before?: string; after?: string; run: Step<C> }[], pipeline: string): PipelineStep<C>[] {
  const names = builtIn.map((s) => s.name);
  const before = new Map<string, PipelineStep<C>[]>();
  const after = new Map<string, PipelineStep<C>[]>();
  for (const behaviour of behaviours) {
    const anchor = behaviour.before ?? behaviour.after;
    if (typeof behaviour.run !== 'function' || anchor === undefined || !names.includes(anchor)) {
      throw new SwitchyardError(ErrorCodes.CONFIG, `Behaviour ${JSON.stringify(behaviour.name)} is placed ${behaviour.before ? 'before' : 'after'} ${JSON.stringify(anchor)}, which is not a step of the ${pipeline} pipeline.`, {
        fix: `Place it before or after one of: ${names.join(', ')} (see docs/pipeline.md), and give it a run(context, next) function.`,
      });
    }
    const at = behaviour.before ? before : after;
    at.set(anchor, [...(at.get(anchor) ?? []), { name: behaviour.name, run: behaviour.run }]);
  }
  return builtIn.flatMap((step) => [...(before.get(step.name) ?? []), step, ...(after.get(step.name) ?? [])]);
}

/** One function that runs a context through the steps in order. */
export function compose<C>(steps: readonly PipelineStep<C>[]): (context: C) => Promise<void> {
  const runs = steps.map((s) => s.run);
  const end = Promise.resolve();
  return (context) => {
    const dispatch = (i: number): Promise<void> => {
      if (i === runs.length) return end;
      try {
        return runs[i]!(context, () => dispatch(i + 1));
      } catch (error) {
        // A step that is not async and throws: the same as a rejection, for the steps before it.
        return Promise.reject(error);
      }
    };
    return dispatch(0);
  };
}
