import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Hooks, type ProgressEvent, type RunOptions, Tensor } from '@sparsekit/core';
import { loadHfModel, tinyLmPath } from '@sparsekit/models/node';
import { HessianAccumulator } from '@sparsekit/sparse-formats';
import { describe, expect, it, vi } from 'vitest';
import { magnitude } from './methods/magnitude.js';
import { sparseGpt } from './methods/sparsegpt.js';
import { pruneModel } from './prune-model.js';
import { calibration, toyModel } from './toy-model.test-util.js';

describe('pruneModel', () => {
  it('accumulates one Hessian for layers that read the same inputs (q/k/v), pruning as if each had its own', async () => {
    const load = async () => {
      const { model, tokenizer } = await loadHfModel(tinyLmPath());
      const ids = tokenizer!.encode(
        readFileSync(join(tinyLmPath(), 'calibration.txt'), 'utf8').slice(0, 3000),
      );
      const batches = [0, 1].map(
        (w) => new Tensor('i32', [1, 64], Int32Array.from(ids.slice(w * 64, (w + 1) * 64))),
      );
      return { model, batches };
    };
    const options = {
      method: 'sparsegpt',
      sparsity: 0.5,
      filter: (n: string) => /^(model\.)?layers\.0\.self_attn\./.test(n),
    } as const;
    const shared = await load();
    const adds = vi.spyOn(HessianAccumulator.prototype, 'add');
    const a = await pruneModel(shared.model, shared.batches, options);
    // Per batch: one add for q, k and v together, one for o.
    expect(adds).toHaveBeenCalledTimes(2 * 2);
    adds.mockRestore();
    // The same model, but every layer of a group handed its own copy of its inputs, one at a time:
    // the statistics are computed separately, and must come out the same.
    const separate = await load();
    const m = separate.model;
    const copying = Object.create(m) as typeof m;
    copying.blockLinearGroups = (i: number) => m.blockLinearLayers(i).map((l) => [l]);
    copying.runBlock = (i: number, h: Tensor<'f32'>, options?: RunOptions) => {
      const outer = options?.hooks;
      if (outer === undefined) return m.runBlock(i, h);
      const hooks = new Hooks();
      hooks.add('linear.input', (x, context) => {
        for (const l of context.layers ?? []) outer.run(x.data.slice(), x.shape, { ...context, layers: [l] });
      });
      return m.runBlock(i, h, { hooks });
    };
    const b = await pruneModel(copying, separate.batches, options);
    expect(b.layers.map((l) => l.reconstructionError)).toEqual(a.layers.map((l) => l.reconstructionError));
    expect(a.layers).toHaveLength(4);
    for (const [i, l] of shared.model.blockLinearLayers(0).entries())
      expect(l.getWeight().data).toEqual(m.blockLinearLayers(0)[i]!.getWeight().data);
  });

  it.each(['wanda', 'sparsegpt'] as const)(
    '%s without reconstruction errors prunes the same weights',
    async (method) => {
      const [a, b] = [toyModel(3), toyModel(3)];
      await pruneModel(a, calibration(4), { method, sparsity: 0.5 });
      const report = await pruneModel(b, calibration(4), {
        method,
        sparsity: 0.5,
        reconstructionError: false,
      });
      for (const l of report.layers) expect(l.reconstructionError).toBeNaN();
      expect(b.weights).toEqual(a.weights);
    },
  );

  it("magnitude's comparison group: one threshold per layer, or the same fraction in every row", async () => {
    const rowsOf = (w: Float32Array, cols: number) =>
      Array.from(
        { length: w.length / cols },
        (_, r) => w.subarray(r * cols, (r + 1) * cols).filter((v) => v === 0).length,
      );
    const byRow = toyModel(5);
    await pruneModel(byRow, [], { method: 'magnitude', sparsity: 0.5, magnitudeScope: 'row' });
    expect(new Set(rowsOf(byRow.weights[0]!, 16))).toEqual(new Set([8]));
    const byLayer = toyModel(5);
    await pruneModel(byLayer, [], { method: 'magnitude', sparsity: 0.5 });
    expect(new Set(rowsOf(byLayer.weights[0]!, 16)).size).toBeGreaterThan(1);
  });

  it.each(['magnitude', 'wanda', 'sparsegpt'] as const)(
    '%s reaches the target, layer by layer, with reports',
    async (method) => {
      const model = toyModel(1);
      const events: ProgressEvent[] = [];
      const report = await pruneModel(model, calibration(2), {
        method,
        sparsity: 0.5,
        onProgress: (e) => events.push(e),
      });
      expect(report.layers.map((l) => l.name)).toEqual([
        'layers.0.mlp.up_proj',
        'layers.0.mlp.down_proj',
        'layers.1.mlp.up_proj',
        'layers.1.mlp.down_proj',
      ]);
      for (const l of report.layers) {
        expect(l.sparsity).toBeGreaterThanOrEqual(0.5);
        expect(l.sparsity).toBeLessThan(0.56);
        expect(l.reconstructionError).toBeGreaterThan(0);
      }
      expect(report.calibrationTokens).toBe(144);
      expect(events.map((e) => e.current)).toEqual([1, 2, 3, 4]);
      // The weights in the model are the pruned ones.
      const zeros = model.weights[0]!.filter((v) => v === 0).length;
      expect(zeros / model.weights[0]!.length).toBeCloseTo(report.layers[0]!.sparsity, 9);
    },
  );

  it('2:4 keeps exactly 2 of every 4 inputs; SparseGPT beats magnitude on reconstruction error', async () => {
    const reports: Record<string, Awaited<ReturnType<typeof pruneModel>>> = {};
    for (const method of ['magnitude', 'wanda', 'sparsegpt'] as const) {
      const model = toyModel(3);
      reports[method] = await pruneModel(model, calibration(4), { method, n: 2, m: 4 });
      // Normal weights are never exactly zero, so exactly 2 of every 4 survive (SparseGPT's updated ones too).
      for (const w of model.weights) {
        for (let g = 0; g < w.length; g += 4)
          expect(w.subarray(g, g + 4).filter((v) => v !== 0).length).toBe(2);
      }
    }
    const sg = reports.sparsegpt!;
    const mag = reports.magnitude!;
    // Every layer reports its own time and metrics, counted from its weights.
    for (const r of Object.values(reports)) {
      for (const l of r.layers) {
        expect(l.seconds).toBeGreaterThanOrEqual(0);
        expect(l.seconds).toBeLessThanOrEqual(r.seconds);
        expect(l.sparsity).toBe(0.5);
        expect(l.pqIndex).toBeGreaterThan(0);
        expect(l.pqIndex).toBeLessThan(1);
      }
    }
    const total = (r: typeof sg) => r.layers.reduce((s, l) => s + l.reconstructionError, 0);
    expect(total(sg)).toBeLessThan(total(mag));
  });

  it('leaves the model unmodified when a step fails, and rejects bad options', async () => {
    const model = toyModel(5);
    const before = model.weights.map((w) => w.slice());
    await expect(pruneModel(model, calibration(6), { method: 'wanda', n: 2, m: 5 })).rejects.toThrow(
      /multiple of M/,
    );
    // A failure in block 1, after block 0 was pruned, restores block 0.
    const badModel = toyModel(5);
    const run = badModel.runBlock.bind(badModel);
    badModel.runBlock = (i, h, hook) => {
      if (i === 1 && hook !== undefined) throw new Error('boom');
      return run(i, h, hook);
    };
    await expect(
      pruneModel(badModel, calibration(6), { method: 'sparsegpt', sparsity: 0.5 }),
    ).rejects.toThrow('boom');
    badModel.weights.forEach((w, i) => {
      expect(w).toEqual(before[i]);
    });
    expect(model.weights).toEqual(before);
    await expect(pruneModel(model, calibration(6), { method: 'wanda', sparsity: 1.2 })).rejects.toThrow(
      /sparsity/,
    );
    await expect(pruneModel(model, [], { method: 'sparsegpt', sparsity: 0.5 })).rejects.toThrow(
      /calibration/,
    );
    await expect(
      pruneModel(model, calibration(6), { method: 'obs' as 'wanda', sparsity: 0.5 }),
    ).rejects.toThrow(/method/);
    await expect(
      pruneModel(model, calibration(6), { method: 'wanda', sparsity: 0.5, filter: () => false }),
    ).rejects.toThrow('no layer is selected');
    for (const percDamp of [Number.POSITIVE_INFINITY, -0.01, Number.NaN]) {
      await expect(
        pruneModel(model, calibration(6), { method: 'sparsegpt', sparsity: 0.5, percDamp }),
      ).rejects.toThrow(/percDamp/);
      expect(() =>
        sparseGpt(model.weights[0]!, 32, 16, new Float64Array(256), { sparsity: 0.5, percDamp }),
      ).toThrow(/percDamp/);
    }
    await expect(
      pruneModel(model, [], { method: 'magnitude', sparsity: 0.5, magnitudeScope: 'rows' as 'row' }),
    ).rejects.toThrow(/magnitudeScope/);
    expect(() => magnitude(model.weights[0]!, 32, 16, { sparsity: 0.5, scope: 'rows' as 'row' })).toThrow(
      /scope/,
    );
    // 4 tokens for layers with 16 and 32 inputs: too few for the Hessian.
    const few = [new Tensor('i32', [1, 4], Int32Array.of(1, 2, 3, 4))];
    await expect(pruneModel(model, few, { method: 'sparsegpt', sparsity: 0.5 })).rejects.toThrow(
      /too small for the Hessian/,
    );
    expect(model.weights).toEqual(before);
  });

  it.each(['magnitude', 'wanda', 'sparsegpt'] as const)(
    '%s names a layer whose weights hold NaN or Inf, before changing anything',
    async (method) => {
      const model = toyModel(5);
      const bad = model.blockLinearLayers(1)[1]!;
      const w = bad.getWeight();
      w.data[7] = Number.NaN;
      bad.setWeight = () => {}; // as a layer that stores what it is given without checking
      (bad as { getWeight: () => Tensor<'f32'> }).getWeight = () => w;
      const before = model.weights.map((x) => x.slice());
      await expect(
        pruneModel(model, calibration(6), { method, sparsity: 0.5, reconstructionError: false }),
      ).rejects.toThrow(/layers\.1\.mlp\.down_proj weight holds a non-finite value \(NaN\) at flat index 7/);
      expect(model.weights).toEqual(before);
    },
  );
});
