import { describe, expect, it } from 'vitest';
import { loadHfModel, tinyLmPath } from '../node.js';
import { generationSpeed } from './speed.js';

describe('generationSpeed', () => {
  it('measures prefill and decode tokens/s and the time to the first token (the prefill)', async () => {
    const { model } = await loadHfModel(tinyLmPath());
    const s = generationSpeed(model, { promptLength: 16, newTokens: 4, reps: 1 });
    expect(s.prefillTokensPerSecond).toBeGreaterThan(0);
    expect(s.decodeTokensPerSecond).toBeGreaterThan(0);
    // One run: the first token's time is that run's prefill, 16 tokens at the prefill rate.
    expect(s.timeToFirstTokenMs).toBeCloseTo((16 / s.prefillTokensPerSecond) * 1000, 6);
  });
});
