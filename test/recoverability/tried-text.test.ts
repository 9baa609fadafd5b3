/** The TRIED column of `switchyard errors list`, as a person would write it. */
import { describe, expect, it } from 'vitest';
import { triedText } from '../../src/cli/errors-command.js';

describe('triedText', () => {
  it.each([
    [{ immediateAttempts: 1, delayedRetries: 0, manualRetries: 0 }, '1 time'],
    [{ immediateAttempts: 6, delayedRetries: 3, manualRetries: 0 }, '6 times after 3 delayed retries'],
    [{ immediateAttempts: 2, delayedRetries: 1, manualRetries: 1 }, '2 times after 1 delayed retry and 1 manual retry'],
    [{ immediateAttempts: 1, delayedRetries: 0, manualRetries: 2 }, '1 time after 2 manual retries'],
    [{ immediateAttempts: 0, delayedRetries: 0, manualRetries: 0 }, '?'],
  ])('%o reads "%s"', (counts, text) => {
    expect(triedText(counts)).toBe(text);
  });
});
