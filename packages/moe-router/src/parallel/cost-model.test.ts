import type { Routing } from '@sparsekit/core';
import { describe, expect, it } from 'vitest';
import { expertParallelCost, gatedExpertFlops, spread } from './cost-model.js';
import { placeExperts, shardTokens } from './placement.js';

// Four tokens, two slots each, four experts; tokens 0-1 live on device 0, tokens 2-3 on device 1.
const routing: Routing = {
  k: 2,
  experts: Int32Array.of(0, 1, 2, -1, 1, 3, 0, 2),
  weights: Float32Array.of(0.6, 0.4, 1, 0, 0.5, 0.5, 0.7, 0.3),
};

describe('placement', () => {
  it('places experts round-robin or in contiguous groups, and shards tokens contiguously', () => {
    expect(Array.from(placeExperts(8, 4, 'round-robin'))).toEqual([0, 1, 2, 3, 0, 1, 2, 3]);
    expect(Array.from(placeExperts(8, 4, 'contiguous'))).toEqual([0, 0, 1, 1, 2, 2, 3, 3]);
    expect(Array.from(placeExperts(8, 3, 'contiguous'))).toEqual([0, 0, 0, 1, 1, 1, 2, 2]);
    expect(Array.from(placeExperts(3, 2, [1, 1, 0]))).toEqual([1, 1, 0]);
    expect(Array.from(shardTokens(5, 2))).toEqual([0, 0, 0, 1, 1]);
    expect(() => placeExperts(2, 3, 'round-robin')).toThrow(/at most numExperts/);
    expect(() => placeExperts(2, 2, [0, 2])).toThrow(/placement of expert 1/);
    expect(() => shardTokens(2, 2, [0])).toThrow(/each of 2 tokens/);
  });
});

describe('expertParallelCost', () => {
  it('counts rows and bytes per device pair by hand (round-robin, one row per slot)', () => {
    const c = expertParallelCost(routing, { numExperts: 4, devices: 2, width: 3, bytesPerValue: 2 });
    expect(Array.from(c.expertDevice)).toEqual([0, 1, 0, 1]);
    expect(Array.from(c.tokenDevice)).toEqual([0, 0, 1, 1]);
    // 0 -> 0: t0 e0, t1 e2; 0 -> 1: t0 e1; 1 -> 1: t2 e1, t2 e3; 1 -> 0: t3 e0, t3 e2.
    expect(Array.from(c.dispatchRows)).toEqual([2, 1, 2, 2]);
    expect(Array.from(c.dispatchBytes)).toEqual([12, 6, 12, 12]);
    // Combine is the transpose: device 1 sends back the row of t0, device 0 the two rows of t3.
    expect(Array.from(c.combineBytes)).toEqual([12, 12, 6, 12]);
    expect(c.allToAll).toEqual({ dispatch: 18, combine: 18 });
    expect(Array.from(c.sentBytes)).toEqual([6, 12]);
    expect(Array.from(c.receivedBytes)).toEqual([12, 6]);
    expect(Array.from(c.rowsPerDevice)).toEqual([4, 3]);
    expect(c.rowLoad).toEqual({ max: 4, mean: 3.5, maxOverMean: 4 / 3.5 });
    expect([c.keptSlots, c.localSlots]).toEqual([7, 4]);
    expect(c.localShare).toBeCloseTo(4 / 7, 12);
  });

  it('sends a token once per device when deduplicating', () => {
    const c = expertParallelCost(routing, { numExperts: 4, devices: 2, width: 3, dedupe: true });
    expect(Array.from(c.dispatchRows)).toEqual([2, 1, 1, 1]);
    expect(c.allToAll.dispatch).toBe(2 * 3 * 4);
    // Compute does not shrink: each (token, expert) pair still runs.
    expect(Array.from(c.rowsPerDevice)).toEqual([4, 3]);
  });

  it('contiguous groups, given token homes and per-expert FLOPs', () => {
    const c = expertParallelCost(routing, {
      numExperts: 4,
      devices: 2,
      width: 1,
      placement: 'contiguous',
      tokenDevice: [1, 1, 0, 0],
      expertFlops: [1, 2, 3, 4],
    });
    expect(Array.from(c.expertDevice)).toEqual([0, 0, 1, 1]);
    // t0, t1 on device 1: e0, e1 -> 0 (2 rows), e2 -> 1; t2, t3 on device 0: e1, e0 -> 0, e3, e2 -> 1.
    expect(Array.from(c.dispatchRows)).toEqual([2, 2, 2, 1]);
    expect(Array.from(c.rowsPerDevice)).toEqual([4, 3]);
    // Device 0 runs e0 twice, e1 twice; device 1 e2 twice, e3 once.
    expect(Array.from(c.flopsPerDevice)).toEqual([2 * 1 + 2 * 2, 2 * 3 + 4]);
    expect(c.flopLoad.maxOverMean).toBeCloseTo(10 / 8, 12);
    expect(c.localSlots).toBe(3);
  });

  it('one device keeps everything local; dropped slots cost nothing', () => {
    const c = expertParallelCost(routing, { numExperts: 4, devices: 1, width: 8 });
    expect(c.allToAll.dispatch).toBe(0);
    expect(c.localShare).toBe(1);
    expect(Array.from(c.dispatchRows)).toEqual([7]);
    const none = expertParallelCost(
      { k: 1, experts: Int32Array.of(-1, -1), weights: new Float32Array(2) },
      {
        numExperts: 2,
        devices: 2,
        width: 4,
      },
    );
    expect([none.keptSlots, none.allToAll.dispatch, none.localShare, none.rowLoad.maxOverMean]).toEqual([
      0, 0, 1, 0,
    ]);
  });

  it('helpers and refusals', () => {
    expect(gatedExpertFlops(512, 1024)).toBe(6 * 512 * 1024);
    expect(spread([1, 3])).toEqual({ max: 3, mean: 2, maxOverMean: 1.5 });
    expect(() => expertParallelCost(routing, { numExperts: 3, devices: 2, width: 1 })).toThrow(
      /routed expert/,
    );
    expect(() => expertParallelCost(routing, { numExperts: 4, devices: 2, width: 0 })).toThrow(/width/);
    expect(() =>
      expertParallelCost(routing, { numExperts: 4, devices: 2, width: 1, expertFlops: [1, 2] }),
    ).toThrow(/expertFlops/);
  });
});
