import { describe, expect, it } from 'vitest';
import { essentialSparsity } from './essential.js';

describe('essentialSparsity', () => {
  it('finds where a flat-then-steep curve leaves the tolerance and where it bends', async () => {
    const curve = (s: number) => (s <= 0.5 ? 10 * (1 + 0.02 * s) : 10 * Math.exp(8 * (s - 0.5)));
    const r = await essentialSparsity([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8], curve);
    expect(r.dense).toBe(10);
    expect(r.essential).toBe(0.5);
    expect(r.knee).toBe(0.5);
    await expect(essentialSparsity([0.1, 0.1, 0.2], curve)).rejects.toThrow(/increasing/);
    await expect(essentialSparsity([0.1, 0.2], curve)).rejects.toThrow(/at least 3/);
  });
});
