import { describe, expect, it } from 'vitest';
import { owlSparsities } from './owl.js';
import { pruneModel } from './prune-model.js';
import { calibration, toyModel } from './toy-model.test-util.js';

describe('OWL', () => {
  it('gives blocks with more outliers less sparsity, spanning 2 lambda, averaging the target', () => {
    const model = toyModel(11, 16, 32, 4);
    // Plant outliers in block 2's weights.
    const up = model.blockLinearLayers(2)[0]!;
    const w = up.getWeight();
    for (let i = 0; i < w.size; i += 7) w.data[i]! *= 25;
    up.setWeight(w);
    const owl = owlSparsities(model, calibration(12), 0.6, { lambda: 0.1 });
    const mean = owl.sparsities.reduce((a, b) => a + b) / owl.sparsities.length;
    expect(mean).toBeCloseTo(0.6, 9);
    const most = owl.outlierRatios.indexOf(Math.max(...owl.outlierRatios));
    expect(most).toBe(2);
    expect(Math.min(...owl.sparsities)).toBeCloseTo(owl.sparsities[2]!, 12);
    expect(Math.max(...owl.sparsities) - Math.min(...owl.sparsities)).toBeCloseTo(0.2, 9);
    // Near the ends a block can leave [0, 1): refused up front, naming the block.
    expect(() => owlSparsities(model, calibration(12), 0.9, { lambda: 0.3 })).toThrow(
      /puts block \d at sparsity 1\.\d+/,
    );
    expect(() => owlSparsities(model, calibration(12), 0.6, { lambda: -0.1 })).toThrow(/lambda/);
    expect(() => owlSparsities(model, calibration(12), 0.6, { m: Number.POSITIVE_INFINITY })).toThrow(
      /m = Infinity/,
    );
  });

  it('drives pruneModel per block with Wanda and SparseGPT, and refuses N:M', async () => {
    const model = toyModel(13, 16, 32, 3);
    const report = await pruneModel(model, calibration(14), { method: 'wanda', sparsity: 0.5, owl: true });
    expect(report.owl!.sparsities).toHaveLength(3);
    report.layers.forEach((l) => {
      const block = Number(l.name.split('.')[1]);
      expect(l.sparsity).toBeCloseTo(report.owl!.sparsities[block]!, 1);
    });
    const sg = await pruneModel(toyModel(13, 16, 32, 3), calibration(14), {
      method: 'sparsegpt',
      sparsity: 0.5,
      owl: true,
    });
    // The same allocation (measured on the same dense model), each block at its own sparsity.
    expect(sg.owl).toEqual(report.owl);
    sg.layers.forEach((l) => {
      const block = Number(l.name.split('.')[1]);
      expect(l.pattern).toEqual({ sparsity: report.owl!.sparsities[block] });
      expect(l.sparsity).toBeCloseTo(report.owl!.sparsities[block]!, 1);
    });
    await expect(
      pruneModel(toyModel(13), calibration(14), { method: 'wanda', n: 2, m: 4, owl: true }),
    ).rejects.toThrow(/OWL/);
  });
});
