/**
 * Message definitions: a stable type name plus the TypeScript type of the body, and optionally
 * a Standard Schema validator (zod, valibot, arktype, ...) checked on send and on receive.
 *
 *   const PlaceOrder = defineCommand<{ orderId: string }>('Sales.PlaceOrder');
 *   const OrderPlaced = defineEvent('Sales.OrderPlaced', { schema: orderPlacedSchema });
 *   const OrderAccepted = defineMessage<{ orderId: string }>('Sales.OrderAccepted'); // a reply
 */
import { ErrorCodes, SwitchyardError } from './errors.js';
import type { StandardSchemaV1 } from './standard-schema.js';

/** command: sent to one owner; event: published to every subscriber; message: a reply or other plain message. */
export type MessageKind = 'command' | 'event' | 'message';

export interface MessageDefinition<TBody = unknown, TKind extends MessageKind = MessageKind> {
  readonly kind: TKind;
  readonly typeName: string;
  /** Parent event types (events only): a subscriber to a parent receives this event too. */
  readonly parents: readonly EventDefinition<unknown>[];
  readonly schema: StandardSchemaV1<unknown, TBody> | undefined;
  /** Type-level only: carries the body type so handlers infer it. Always undefined at runtime. */
  readonly __body?: TBody;
}

export type CommandDefinition<TBody = unknown> = MessageDefinition<TBody, 'command'>;
export type EventDefinition<TBody = unknown> = MessageDefinition<TBody, 'event'>;
export type PlainMessageDefinition<TBody = unknown> = MessageDefinition<TBody, 'message'>;
export type BodyOf<D> = D extends MessageDefinition<infer B, MessageKind> ? B : never;

export interface DefinitionOptions<TBody> {
  schema?: StandardSchemaV1<unknown, TBody>;
}
export interface EventOptions<TBody> extends DefinitionOptions<TBody> {
  parents?: readonly EventDefinition<unknown>[];
}

const TYPE_NAME = /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$/;

function checkTypeName(typeName: string): void {
  if (!TYPE_NAME.test(typeName) || typeName.length > 200) {
    throw new SwitchyardError(ErrorCodes.CONFIG, `Message type name ${JSON.stringify(typeName)} is not valid.`, {
      fix: 'Use dot-separated identifiers such as "Sales.OrderPlaced" (at most 200 characters).',
    });
  }
}

export function defineCommand<TBody>(typeName: string, options: DefinitionOptions<TBody> = {}): CommandDefinition<TBody> {
  checkTypeName(typeName);
  return Object.freeze({ kind: 'command', typeName, parents: [], schema: options.schema });
}

/** A reply, or another message that is neither a command nor an event. */
export function defineMessage<TBody>(typeName: string, options: DefinitionOptions<TBody> = {}): PlainMessageDefinition<TBody> {
  checkTypeName(typeName);
  return Object.freeze({ kind: 'message', typeName, parents: [], schema: options.schema });
}

export function defineEvent<TBody>(typeName: string, options: EventOptions<TBody> = {}): EventDefinition<TBody> {
  checkTypeName(typeName);
  for (const parent of options.parents ?? []) {
    if (parent.kind !== 'event') {
      throw new SwitchyardError(ErrorCodes.CONFIG, `Event ${typeName} names ${parent.typeName} as a parent, but it is a command.`, {
        fix: 'Only events can be parents of events.',
      });
    }
  }
  return Object.freeze({ kind: 'event', typeName, parents: Object.freeze([...(options.parents ?? [])]), schema: options.schema });
}

/** Definitions are frozen, so their enclosed types are worked out once (every send needs them). */
const enclosedCache = new WeakMap<MessageDefinition, readonly string[]>();

/** The type and all its ancestors, nearest first, each once: what the enclosed-types header carries. */
export function enclosedTypes(definition: MessageDefinition): readonly string[] {
  let types = enclosedCache.get(definition);
  if (!types) {
    const seen = new Set<string>();
    const visit = (d: MessageDefinition) => {
      if (seen.has(d.typeName)) return;
      seen.add(d.typeName);
      d.parents.forEach(visit);
    };
    visit(definition);
    types = Object.freeze([...seen]);
    enclosedCache.set(definition, types);
  }
  return types;
}

/**
 * The set of message definitions an endpoint knows. Deserialisation is allow-listed by it:
 * a type name from the wire only ever selects one of these definitions, never code.
 */
export class MessageRegistry {
  private readonly byName = new Map<string, MessageDefinition>();

  constructor(definitions: Iterable<MessageDefinition> = []) {
    for (const d of definitions) this.add(d);
  }

  add(definition: MessageDefinition): void {
    const existing = this.byName.get(definition.typeName);
    if (existing && existing !== definition) {
      throw new SwitchyardError(ErrorCodes.CONFIG, `Two different message definitions use the type name ${definition.typeName}.`, {
        fix: 'Define each message once and import that definition wherever it is used.',
      });
    }
    this.byName.set(definition.typeName, definition);
    definition.parents.forEach((p) => this.add(p));
  }

  get(typeName: string): MessageDefinition | undefined {
    return this.byName.get(typeName);
  }

  has(definition: MessageDefinition): boolean {
    return this.byName.get(definition.typeName) === definition;
  }

  all(): MessageDefinition[] {
    return [...this.byName.values()];
  }
}
