import { Rng, Tensor } from '@sparsekit/core';
import { HessianAccumulator, measuredSparsity } from '@sparsekit/sparse-formats';
import { describe, expect, it } from 'vitest';
import { pqIndex, reconstructionError } from './metrics.js';

describe('layer metrics', () => {
  it('measured sparsity counts exact zeros', () => {
    expect(measuredSparsity(Float32Array.of(0, 1, -0, 2e-30, 0))).toBe(0.6);
    expect(measuredSparsity([])).toBe(0);
  });

  it('PQ Index: 0 for equal magnitudes, 1 - 1/sqrt(d) for one nonzero, growing as mass concentrates', () => {
    expect(pqIndex([2, -2, 2, -2])).toBeCloseTo(0, 12);
    expect(pqIndex([0, 0, 5, 0])).toBeCloseTo(0.5, 12);
    expect(pqIndex([3, 4])).toBeCloseTo(1 - 7 / (5 * Math.SQRT2), 12);
    expect(pqIndex([0, 0])).toBe(0);
    const w = new Rng(3).normalArray(64);
    const pruned = w.map((v, i) => (i % 2 === 0 ? 0 : v));
    expect(pqIndex(pruned)).toBeGreaterThan(pqIndex(w));
  });

  it('reconstruction error equals sum((X W^T - X W_pruned^T)^2) computed directly (1e-9 relative)', () => {
    const rng = new Rng(5);
    const [rows, cols, n] = [6, 10, 40];
    const x = Float32Array.from(rng.normalArray(n * cols));
    const w = rng.normalArray(rows * cols);
    const p = w.map((v, i) => (i % 3 === 0 ? 0 : v * 0.9));
    const h = new HessianAccumulator(cols);
    h.add(new Tensor('f32', [n, cols], x));
    let direct = 0;
    for (let t = 0; t < n; t++) {
      for (let r = 0; r < rows; r++) {
        let d = 0;
        for (let c = 0; c < cols; c++) d += x[t * cols + c]! * (w[r * cols + c]! - p[r * cols + c]!);
        direct += d * d;
      }
    }
    const error = reconstructionError(w, p, rows, cols, h.matrix(), h.samples);
    expect(Math.abs(error - direct) / direct).toBeLessThan(1e-9);
  });
});
