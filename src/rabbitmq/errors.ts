/**
 * Broker refusals and connection failures, turned into coded errors that say what to do.
 * amqplib reports a server refusal as an Error with a numeric `code` (the AMQP reply code:
 * 403 access refused, 404 not found, 406 precondition failed, 5xx connection errors) and the
 * broker's text in the message; a socket failure carries a string `code` (ECONNREFUSED, ...).
 */
import { ErrorCodes, SwitchyardError } from '../core/errors.js';

/** The url without its password, for messages and logs. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return '(unparseable url)';
  }
}

function replyCode(error: unknown): number | string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'number' || typeof code === 'string' ? code : undefined;
}

function text(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** True when the error is a broker refusal (retrying the same operation gives the same answer). */
export function isRefusal(error: unknown): boolean {
  if (error instanceof SwitchyardError) return error.code !== ErrorCodes.TRANSPORT && error.code !== ErrorCodes.NOT_RUNNING;
  const code = replyCode(error);
  return code === 403 || code === 404 || code === 406 || /ACCESS.REFUSED|PRECONDITION.FAILED|NOT.FOUND/.test(text(error));
}

/** Maps an amqplib error raised while doing `what` (e.g. "declaring queue Sales") to a SwitchyardError. */
export function brokerError(error: unknown, what: string, url: string): SwitchyardError {
  if (error instanceof SwitchyardError) return error;
  const message = text(error);
  const code = replyCode(error);
  const where = `RabbitMQ at ${redactUrl(url)}`;
  if (code === 403 || /ACCESS.REFUSED/.test(message)) {
    return new SwitchyardError(ErrorCodes.ACCESS_REFUSED, `${where} refused access while ${what}: ${message}`, {
      fix: "Check the user and password in the url (amqp://user:password@host:5672/vhost) and the user's permissions on the virtual host (rabbitmqctl set_permissions -p <vhost> <user> '.*' '.*' '.*').",
      cause: error,
    });
  }
  const inequivalent = /inequivalent arg '([^']+)' for (queue|exchange) '([^']+)'[^:]*: received (.+?) but current is (.+?)"?$/.exec(message);
  if (inequivalent) {
    const [, arg, kind, name, wanted, current] = inequivalent;
    return new SwitchyardError(
      ErrorCodes.TOPOLOGY_CONFLICT,
      `The ${kind} ${name} already exists on ${where} with ${arg} ${current}, but Switchyard declares it with ${wanted}.`,
      {
        fix:
          arg === 'x-queue-type'
            ? `Set queueType to match the existing ${kind} (e.g. queueType: 'classic'), or move its messages elsewhere, delete it (rabbitmqctl delete_queue ${name}) and start again so it is declared as ${wanted}.`
            : `Delete the ${kind} ${name} (after draining it) so Switchyard declares it again, or declare it yourself with the same settings (see docs/rabbitmq.md, "Pre-creating the topology").`,
        cause: error,
      },
    );
  }
  if (/message size|larger than configured max size|max_message_size/i.test(message)) {
    return new SwitchyardError(ErrorCodes.MESSAGE_TOO_LARGE, `${where} refused a message while ${what}: ${message}`, {
      fix: 'Send a reference to large data instead of the data, or raise max_message_size in rabbitmq.conf.',
      cause: error,
    });
  }
  if (code === 404 || /NOT.FOUND/.test(message)) {
    return new SwitchyardError(ErrorCodes.QUEUE_NOT_FOUND, `${where}: not found while ${what}: ${message}`, {
      fix: 'Start the endpoint that owns the queue first (it declares its topology), or create the topology (see docs/rabbitmq.md, "Pre-creating the topology").',
      cause: error,
    });
  }
  if (code === 406 || /PRECONDITION.FAILED/.test(message)) {
    return new SwitchyardError(ErrorCodes.TOPOLOGY_CONFLICT, `${where} refused ${what}: ${message}`, {
      fix: 'The broker says the request conflicts with existing settings or limits; the message names them. Align the settings, or delete and re-declare the object.',
      cause: error,
    });
  }
  if (typeof code === 'number' && code >= 500) {
    return new SwitchyardError(ErrorCodes.TRANSPORT, `${where} closed the connection while ${what} (AMQP ${code}): ${message}`, {
      fix: 'A frame or protocol error: check that nothing between this process and the broker alters traffic, and that client and broker versions are supported; the broker log says more.',
      cause: error,
    });
  }
  return new SwitchyardError(ErrorCodes.TRANSPORT, `${where} failed while ${what}: ${message}`, {
    fix: 'Check the broker is running (rabbitmqctl status) and reachable from here, and that the url (option url / SWITCHYARD_RABBITMQ_URL) is right.',
    cause: error,
  });
}
