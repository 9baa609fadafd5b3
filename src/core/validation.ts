import { ErrorCodes, SwitchyardError } from './errors.js';
import type { MessageDefinition } from './messages.js';
import { describeIssues } from './standard-schema.js';

/** Runs the definition's Standard Schema, if any; returns the validated (possibly transformed) body. */
export async function validateBody(definition: MessageDefinition, body: unknown, where: 'send' | 'receive'): Promise<unknown> {
  if (!definition.schema) return body;
  const result = await definition.schema['~standard'].validate(body);
  if (result.issues) {
    throw new SwitchyardError(
      ErrorCodes.VALIDATION_FAILED,
      `The body of ${definition.typeName} failed validation on ${where}: ${describeIssues(result.issues)}.`,
      {
        fix:
          where === 'send'
            ? 'Fix the values passed to send/publish so they match the message definition.'
            : 'The sender produced a body its contract does not allow; fix the sender, then retry the message from the error queue.',
      },
    );
  }
  return result.value;
}
