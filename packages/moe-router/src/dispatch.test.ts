import { InvalidArgumentError, Rng } from '@sparsekit/core';
import { describe, expect, it } from 'vitest';
import { combineRows, dispatch, gatherRows, paddedDispatch } from './dispatch.js';
import { routeTopK } from './top-k.js';

const rng = new Rng(21);
const [T, E, W] = [17, 5, 3];
const logits = Float64Array.from(rng.normalArray(T * E, 0, 2));

describe('dropless grouped dispatch (Megablocks order)', () => {
  const r = routeTopK(logits, E, { k: 2 });
  const g = dispatch(r, E);

  it('groups every kept slot once, sorted by expert then slot, with offsets per expert', () => {
    expect(g.offsets[0]).toBe(0);
    expect(g.offsets[E]).toBe(T * 2);
    for (let e = 0; e < E; e++) {
      const want = Array.from({ length: T * 2 }, (_, s) => s).filter((s) => r.experts[s] === e);
      expect(Array.from(g.slots.subarray(g.offsets[e]!, g.offsets[e + 1]!))).toEqual(want);
    }
    expect(Array.from(g.tokens)).toEqual(Array.from(g.slots, (s) => Math.floor(s / 2)));
  });

  it('gather, a per-expert map, combine equals the direct weighted sum per token', () => {
    const x = rng.normalArray(T * W);
    const rows = gatherRows(x, W, g);
    // Expert e scales its rows by (e + 1).
    const y = rows.slice();
    for (let e = 0; e < E; e++)
      for (let i = g.offsets[e]! * W; i < g.offsets[e + 1]! * W; i++) y[i]! *= e + 1;
    const out = combineRows(y, W, g, T);
    const want = new Float64Array(T * W);
    for (let t = 0; t < T; t++)
      for (let j = 0; j < 2; j++) {
        const e = r.experts[t * 2 + j]!;
        for (let d = 0; d < W; d++) want[t * W + d]! += r.weights[t * 2 + j]! * (e + 1) * x[t * W + d]!;
      }
    expect(out).toAllClose(want, { atol: 1e-6, rtol: 1e-6 });
  });

  it('skips dropped slots', () => {
    const capped = routeTopK(logits, E, { k: 2, capacity: { perExpert: 3 } });
    const cg = dispatch(capped, E);
    expect(cg.slots.length).toBe(T * 2 - capped.dropped);
    for (let e = 0; e < E; e++) expect(cg.offsets[e + 1]! - cg.offsets[e]!).toBeLessThanOrEqual(3);
  });
});

describe('padded capacity layout', () => {
  it('places kept slots at their GShard priority position, pads the rest with -1', () => {
    const capped = routeTopK(logits, E, { k: 2, capacity: { factor: 1, convention: 'switch' } });
    const cap = capped.capacity!;
    const p = paddedDispatch(capped, E, cap);
    expect(p.slots.length).toBe(E * cap);
    let kept = 0;
    for (let e = 0; e < E; e++) {
      const priority: number[] = [];
      for (let j = 0; j < 2; j++)
        for (let t = 0; t < T; t++) if (capped.experts[t * 2 + j] === e) priority.push(t * 2 + j);
      const row = Array.from(p.slots.subarray(e * cap, (e + 1) * cap));
      expect(row).toEqual([...priority, ...new Array(cap - priority.length).fill(-1)]);
      kept += priority.length;
    }
    expect(p.padding).toBe(E * cap - kept);
  });

  it('refuses a routing that overflows the capacity', () => {
    const dropless = routeTopK(logits, E, { k: 2 });
    expect(() => paddedDispatch(dropless, E, 1)).toThrow(InvalidArgumentError);
    expect(() => dispatch({ k: 1, experts: Int32Array.of(0, 7), weights: new Float32Array(2) }, E)).toThrow(
      InvalidArgumentError,
    );
  });
});
