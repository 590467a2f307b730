import { describe, expect, it } from 'vitest';
import { toyModel } from '../toy-model.test-util.js';
import { erkDensities, globalMagnitude, pruneAllocation, randomPrune } from './global.js';

describe('global magnitude', () => {
  it('reaches the overall target with one threshold, and never keeps less than the floor in a layer', () => {
    const model = toyModel(2);
    // Shrink one layer so a single threshold would empty it.
    const layers = model.linearLayers();
    const small = layers[1]!.getWeight();
    small.data.forEach((v, i) => {
      small.data[i] = v * 1e-3;
    });
    layers[1]!.setWeight(small);
    const report = globalMagnitude(layers, 0.5, 0.2);
    expect(report.sparsity).toBeCloseTo(0.5, 2);
    expect(report.sparsities[1]).toBeCloseTo(0.8, 2);
    expect(() => globalMagnitude(toyModel(2).linearLayers(), 0.999)).toThrow(
      'at sparsity 0.999 every layer can keep at most 0.001 of its weights (lower minKeep',
    );
    const noFloor = globalMagnitude(toyModel(2).linearLayers(), 0.5, 0);
    expect(noFloor.sparsity).toBeCloseTo(0.5, 2);
  });

  it('prunes exactly the smallest magnitudes under the threshold; it and random pruning name a layer holding NaN', () => {
    const model = toyModel(6);
    const before = model.weights.map((w) => w.slice());
    globalMagnitude(model.linearLayers(), 0.4, 0);
    // One threshold: every kept |w| is at least every pruned |w|, across layers.
    let maxPruned = 0;
    let minKept = Number.POSITIVE_INFINITY;
    before.forEach((w, i) => {
      w.forEach((v, k) => {
        if (model.weights[i]![k] === 0) maxPruned = Math.max(maxPruned, Math.abs(v));
        else minKept = Math.min(minKept, Math.abs(v));
      });
    });
    expect(maxPruned).toBeLessThanOrEqual(minKept);
    const total = before.reduce((n, w) => n + w.length, 0);
    expect(model.weights.reduce((n, w) => n + w.filter((v) => v === 0).length, 0)).toBe(
      Math.floor(0.4 * total),
    );
    // Weights that tie (quantised to four levels, or all equal): still exactly the target.
    for (const levels of [4, 1]) {
      const q = toyModel(6);
      for (const l of q.linearLayers()) {
        const t = l.getWeight();
        t.data.forEach((v, k) => {
          t.data[k] = Math.sign(v || 1) * (1 + (Math.floor(Math.abs(v) * 97) % levels));
        });
        l.setWeight(t);
      }
      const r = globalMagnitude(q.linearLayers(), 0.3, 0);
      expect(r.sparsity * total, `${levels} levels`).toBeCloseTo(Math.floor(0.3 * total), 6);
    }
    const bad = toyModel(6);
    const w = bad.linearLayers()[2]!.getWeight();
    w.data[3] = Number.NaN;
    bad.linearLayers()[2]!.getWeight = () => w;
    expect(() => globalMagnitude(bad.linearLayers(), 0.4)).toThrow(/layers\.1\.mlp\.up_proj weight .*NaN/);
    expect(() => randomPrune(bad.linearLayers(), { sparsity: 0.4 })).toThrow(
      /layers\.1\.mlp\.up_proj weight .*NaN/,
    );
  });
});

describe('pruneAllocation', () => {
  it('runs global magnitude or random pruning over a model, reported per layer like pruneModel', () => {
    const model = toyModel(8, 16, 32, 3);
    const report = pruneAllocation(model, {
      method: 'global-magnitude',
      sparsity: 0.5,
      filter: (n) => !n.startsWith('layers.2.'),
      recipe: { method: 'global-magnitude', sparsity: 0.5 },
    });
    expect(report.layers.map((l) => l.name)).toEqual([
      'layers.0.mlp.up_proj',
      'layers.0.mlp.down_proj',
      'layers.1.mlp.up_proj',
      'layers.1.mlp.down_proj',
    ]);
    expect(report.sparsity).toBeCloseTo(0.5, 2);
    for (const [i, l] of report.layers.entries()) {
      const zeros = model.weights[i]!.filter((v) => v === 0).length / model.weights[i]!.length;
      expect(l.sparsity).toBeCloseTo(zeros, 12);
      expect('sparsity' in l.pattern && l.pattern.sparsity).toBeCloseTo(zeros, 12);
      expect(l.seconds).toBeGreaterThanOrEqual(0);
      expect(l.seconds).toBeLessThanOrEqual(report.seconds);
    }
    expect(model.weights[4]!.every((v) => v !== 0)).toBe(true); // block 2 not selected
    expect(report.recipe).toEqual({ method: 'global-magnitude', sparsity: 0.5 });
    const random = pruneAllocation(toyModel(8, 16, 32, 3), {
      method: 'random',
      sparsity: 0.7,
      distribution: 'erk',
      seed: 1,
    });
    expect(random.sparsity).toBeCloseTo(0.7, 2);
    for (const l of random.layers) expect(l.seconds).toBeGreaterThanOrEqual(0);
    // Progress per layer, with the total; an abort part way leaves every weight as it was.
    for (const method of ['global-magnitude', 'random'] as const) {
      const events: string[] = [];
      pruneAllocation(toyModel(8, 16, 32, 3), {
        method,
        sparsity: 0.5,
        onProgress: (e) => events.push(`${e.current}/${e.total}`),
      });
      expect(events).toEqual(['1/6', '2/6', '3/6', '4/6', '5/6', '6/6']);
      const aborted = toyModel(8, 16, 32, 3);
      const before = aborted.weights.map((w) => w.slice());
      const controller = new AbortController();
      expect(() =>
        pruneAllocation(aborted, {
          method,
          sparsity: 0.5,
          signal: controller.signal,
          onProgress: (e) => {
            if (e.current === 2) controller.abort(new Error('stop'));
          },
        }),
      ).toThrow('stop');
      expect(aborted.weights).toEqual(before);
    }
    expect(() =>
      pruneAllocation(toyModel(8), { method: 'random', sparsity: 0.5, filter: () => false }),
    ).toThrow(/no layer is selected/);
  });
});

describe('random pruning', () => {
  it('uniform: every layer at the target, reproducible per seed', () => {
    const a = randomPrune(toyModel(3).linearLayers(), { sparsity: 0.6, seed: 1 });
    const b = toyModel(3);
    randomPrune(b.linearLayers(), { sparsity: 0.6, seed: 1 });
    const c = toyModel(3);
    randomPrune(c.linearLayers(), { sparsity: 0.6, seed: 1 });
    for (const s of a.sparsities) expect(s).toBeCloseTo(0.6, 2);
    expect(b.weights).toEqual(c.weights);
  });

  it('ERK: densities proportional to (in + out) / (in * out), capped at 1, total at the target', () => {
    const shapes = [
      [4, 4],
      [64, 256],
      [256, 64],
      [512, 512],
    ] as const;
    const d = erkDensities(shapes, 0.8);
    const sizes = shapes.map(([r, c]) => r * c);
    const kept = d.reduce((n, x, i) => n + x * sizes[i]!, 0);
    expect(kept / sizes.reduce((a, b) => a + b)).toBeCloseTo(0.2, 9);
    expect(d[0]).toBe(1);
    expect(d[1]! / d[3]!).toBeCloseTo(320 / (64 * 256) / (1024 / (512 * 512)), 9);
    const report = randomPrune(toyModel(4).linearLayers(), { sparsity: 0.7, distribution: 'erk', seed: 2 });
    expect(report.sparsity).toBeCloseTo(0.7, 2);
  });
});
