import { describe, expect, it } from 'vitest';
import { ErrorCodes, SwitchyardError, UnrecoverableError } from '../../src/core/errors.js';
import { memoryTransport } from '../../src/memory/index.js';
import { createEndpoint } from '../../src/index.js';
import { checkRecoverability, decide, recoverabilityConfig, type FailureInfo, type RecoverabilityOptions } from '../../src/recoverability/policy.js';

function failure(error: Error, deliveryCount: number, delayedRound = 0): FailureInfo {
  return { error, messageType: 'Sales.PlaceOrder', headers: {}, deliveryCount, delayedRound };
}

/** The decisions for one message failing with `error` every time, until it leaves the pipeline. */
function walk(options: RecoverabilityOptions, error: Error): string[] {
  const config = recoverabilityConfig(options);
  const steps: string[] = [];
  for (let round = 0, delivery = 1; steps.length < 100; ) {
    const action = decide(config, failure(error, delivery, round));
    steps.push(action.kind === 'delayed' ? `delayed ${action.delayMs}` : action.kind);
    if (action.kind === 'immediate') delivery += 1;
    else if (action.kind === 'delayed') (round += 1), (delivery = 1);
    else return steps;
  }
  return steps;
}

describe('recoverability policy', () => {
  it('defaults to 5 immediate retries per round, then delayed retries at 10, 20 and 30 s, then the error queue', () => {
    const round = ['immediate', 'immediate', 'immediate', 'immediate', 'immediate'];
    expect(walk({}, new Error('db down'))).toEqual([...round, 'delayed 10000', ...round, 'delayed 20000', ...round, 'delayed 30000', ...round, 'error']);
  });

  it('never retries failures that cannot succeed', () => {
    for (const error of [
      new UnrecoverableError('no such customer'),
      new SwitchyardError(ErrorCodes.VALIDATION_FAILED, 'bad body'),
      new SwitchyardError(ErrorCodes.MALFORMED_MESSAGE, 'not JSON'),
    ]) {
      expect(walk({}, error)).toEqual(['error']);
    }
  });

  it('lets a policy retry timeouts longer and send a domain error to the error queue at once', () => {
    const policy: RecoverabilityOptions['policy'] = (f, action) => {
      if (f.error.name === 'TimeoutError') {
        return f.delayedRound < 5 ? { kind: 'delayed', delayMs: 60_000 * (f.delayedRound + 1) } : { kind: 'error', reason: 'timed out 6 times' };
      }
      if (f.error instanceof RangeError) return { kind: 'error', reason: 'a price out of range will not fix itself' };
      return action;
    };
    const timeout = Object.assign(new Error('took too long'), { name: 'TimeoutError' });
    expect(walk({ policy }, timeout)).toEqual(['delayed 60000', 'delayed 120000', 'delayed 180000', 'delayed 240000', 'delayed 300000', 'error']);
    expect(walk({ policy }, new RangeError('price'))).toEqual(['error']);
    expect(walk({ policy, immediateRetries: 1, delayedRetries: { count: 0 } }, new Error('x'))).toEqual(['immediate', 'error']);
  });

  it('sends the message to the error queue when the policy throws or returns nonsense, never drops it', () => {
    const throwing = decide(recoverabilityConfig({ policy: () => { throw new Error('policy bug'); } }), failure(new Error('x'), 1));
    expect(throwing).toEqual({ kind: 'error', reason: 'the recoverability policy threw: policy bug' });
    const nonsense = decide(recoverabilityConfig({ policy: () => ({ kind: 'delayed', delayMs: -5 }) }), failure(new Error('x'), 1));
    expect(nonsense.kind).toBe('error');
  });

  it('refuses delayed retries on a transport without delayed delivery, naming the setting', () => {
    const transport = { ...memoryTransport(), name: 'fifo', capabilities: { delayedDelivery: false, nativePubSub: false, atomicSendWithReceive: true, competingConsumers: true, exactDeliveryCount: true } };
    expect(() => createEndpoint({ name: 'Sales', transport })).toThrow(/recoverability\.delayedRetries.*fifo transport cannot deliver messages later/);
    expect(() => createEndpoint({ name: 'Sales', transport, recoverability: { delayedRetries: { count: 0 } } })).not.toThrow();
    expect(() => checkRecoverability(recoverabilityConfig({ immediateRetries: -1 }), transport)).toThrow(/immediateRetries/);
  });
});
