import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  type BlockwiseLM,
  InvalidArgumentError,
  type LinearLayer,
  Rng,
  type RunOptions,
  Tensor,
} from '@sparsekit/core';
import type { TransformerLM } from '@sparsekit/models';
import { loadHfModel, tinyLmPath } from '@sparsekit/models/node';
import { describe, expect, it } from 'vitest';
import { calibration, linearInput, toyModel } from '../toy-model.test-util.js';
import { pruneBlocks, pruneColumns, pruneRows, pruneStructured } from './structured.js';

describe('layer-level structures', () => {
  const rows = 8;
  const cols = 12;
  const w = new Rng(1).normalArray(rows * cols);

  it('rows, columns and blocks with the smallest norms go whole', () => {
    const r = pruneRows(w, rows, cols, 0.25);
    const zeroRows = Array.from({ length: rows }, (_, i) => i).filter((i) =>
      r.weight.subarray(i * cols, (i + 1) * cols).every((v) => v === 0),
    );
    expect(zeroRows).toHaveLength(2);
    const norm = (i: number) => w.subarray(i * cols, (i + 1) * cols).reduce((s, v) => s + v * v, 0);
    const kept = Array.from({ length: rows }, (_, i) => i).filter((i) => !zeroRows.includes(i));
    expect(Math.max(...zeroRows.map(norm))).toBeLessThanOrEqual(Math.min(...kept.map(norm)));
    const c = pruneColumns(w, rows, cols, 0.5, new Float64Array(cols).fill(1));
    expect(c.mask.reduce((a, b) => a + b, 0)).toBe(6 * rows);
    const b = pruneBlocks(w, rows, cols, 0.5, [2, 3]);
    expect(b.mask.reduce((a, v) => a + v, 0)).toBe(rows * cols * 0.5);
    expect(() => pruneBlocks(w, rows, cols, 0.5, [3, 3])).toThrow(/dividing the weight shape/);
    expect(() => pruneBlocks(w, rows, cols, 0.5, [-2, 2])).toThrow(/positive integers/);
    // Input statistics: one finite, non-negative mean square per column.
    expect(() => pruneColumns(w, rows, cols, 0.5, new Float64Array(cols - 1))).toThrow(/input norms/);
    const bad = new Float64Array(cols).fill(1);
    bad[3] = Number.NaN;
    expect(() => pruneColumns(w, rows, cols, 0.5, bad)).toThrow(/input norms/);
    bad[3] = -1;
    expect(() => pruneColumns(w, rows, cols, 0.5, bad)).toThrow(/entry 3 is negative/);
  });
});

/** One block with attention-like q_proj / o_proj (4 heads of 4) and an MLP. */
function attentionToy(seed: number): BlockwiseLM & { layers: LinearLayer[] } {
  const base = toyModel(seed, 16, 32, 1);
  const rng = new Rng(seed + 100);
  const make = (name: string) => {
    let w = rng.normalArray(256, 0, 0.3);
    return {
      name,
      inFeatures: 16,
      outFeatures: 16,
      getWeight: () => new Tensor('f32', [16, 16], w.slice()),
      setWeight: (t: Tensor<'f32'>) => {
        w = t.data.slice();
      },
      apply: (x: Float32Array, tokens: number) => {
        const y = new Float32Array(tokens * 16);
        for (let t = 0; t < tokens; t++)
          for (let o = 0; o < 16; o++)
            for (let i = 0; i < 16; i++) y[t * 16 + o]! += x[t * 16 + i]! * w[o * 16 + i]!;
        return y;
      },
    };
  };
  const q = make('layers.0.self_attn.q_proj');
  const o = make('layers.0.self_attn.o_proj');
  const mlp = base.blockLinearLayers(0);
  const layers = [q, o, ...mlp];
  return {
    ...base,
    layers,
    linearLayers: () => layers,
    blockLinearLayers: () => layers,
    blockLinearGroups: () => layers.map((l) => [l]),
    runBlock(i: number, h: Tensor<'f32'>, options?: RunOptions) {
      const tokens = h.size / 16;
      const a = q.apply(linearInput(options, [q], h.data, i), tokens).map((v) => Math.max(0, v));
      const mid = h.data.slice();
      const d = o.apply(linearInput(options, [o], a, i), tokens);
      for (let k = 0; k < mid.length; k++) mid[k]! += d[k]!;
      return base.runBlock(i, new Tensor('f32', h.shape, mid), options);
    },
  };
}

describe('activation-based structured pruning', () => {
  it('removes MLP channels (rows of up, columns of down) and heads (rows of q, columns of o)', () => {
    const model = attentionToy(3);
    const report = pruneStructured(model, calibration(4), { mlpChannels: 0.25, heads: 0.5, numHeads: 4 });
    const [q, o, up, down] = model.layers.map((l) => l.getWeight().data);
    const { channels, heads } = report.blocks[0]!;
    expect(channels).toHaveLength(8);
    expect(heads).toHaveLength(2);
    for (const c of channels) {
      expect(up!.subarray(c * 16, (c + 1) * 16).every((v) => v === 0)).toBe(true);
      for (let r = 0; r < 16; r++) expect(down![r * 32 + c]).toBe(0);
    }
    for (const h of heads) {
      for (let d = 0; d < 4; d++) {
        expect(q!.subarray((h * 4 + d) * 16, (h * 4 + d + 1) * 16).every((v) => v === 0)).toBe(true);
        for (let r = 0; r < 16; r++) expect(o![r * 16 + h * 4 + d]).toBe(0);
      }
    }
    expect(() => pruneStructured(model, calibration(4), { heads: 0.5 })).toThrow(/numHeads/);
    // Counts that do not divide o_proj's 16 inputs, or the query heads, are refused.
    expect(() => pruneStructured(model, calibration(4), { heads: 0.5, numHeads: 3 })).toThrow(
      /numHeads.*does not divide/,
    );
    expect(() => pruneStructured(model, calibration(4), { heads: 0.5, numHeads: 4, numKvHeads: 3 })).toThrow(
      /numKvHeads/,
    );
  });

  it('an abort part way restores every zeroed weight', () => {
    const model = toyModel(7, 16, 32, 2);
    const before = model.weights.map((w) => w.slice());
    const abort = new AbortController();
    expect(() =>
      pruneStructured(model, calibration(2), {
        mlpChannels: 0.5,
        signal: abort.signal,
        onProgress: () => abort.abort(),
      }),
    ).toThrow(/abort/i);
    expect(model.weights).toEqual(before);
  });
});

describe('the accelerate path: deleting what was removed (tiny-lm, 4 heads in 2 key/value groups)', () => {
  async function setup() {
    const { model, tokenizer } = await loadHfModel(tinyLmPath());
    const ids = tokenizer!.encode(readFileSync(join(tinyLmPath(), 'calibration.txt'), 'utf8').slice(0, 4000));
    const window = (w: number) =>
      new Tensor('i32', [1, 64], Int32Array.from(ids.slice(w * 64, (w + 1) * 64)));
    return { model, batches: [window(0), window(1)], probe: window(2) };
  }

  /** The simulate path for a report: zero rows of gate/up/q and columns of down/o. */
  function zeroAsReported(
    model: TransformerLM,
    report: { blocks: { channels: number[]; heads: number[] }[] },
  ) {
    const hd = model.blockShape.headDim;
    const zero = (l: LinearLayer, rows: number[], cols: number[]) => {
      const w = Float32Array.from(l.getWeight().data);
      for (const r of rows) w.fill(0, r * l.inFeatures, (r + 1) * l.inFeatures);
      for (const c of cols) for (let r = 0; r < l.outFeatures; r++) w[r * l.inFeatures + c] = 0;
      l.setWeight(new Tensor('f32', [l.outFeatures, l.inFeatures], w));
    };
    report.blocks.forEach(({ channels, heads }, i) => {
      const b = model.params.blocks[i]!;
      const dims = heads.flatMap((h) => Array.from({ length: hd }, (_, d) => h * hd + d));
      const [gate, up, down] = model.blockLinearGroups(i).slice(2).flat();
      zero(up!, channels, []);
      zero(gate!, channels, []);
      zero(down!, [], channels);
      zero(b.q, dims, []);
      zero(b.o, [], dims);
    });
  }

  it('leaves narrower dense layers computing what the zeroed model computes (1e-4)', async () => {
    const { model, batches, probe } = await setup();
    const dense = model.parameterCount();
    const report = pruneStructured(model, batches, { mlpChannels: 0.25, heads: 0.5, narrow: true });
    expect(report.blockShape).toEqual({ mlpChannels: 288, heads: 2, kvHeads: 2, headDim: 32 });
    // One query head left each key/value group, in every block.
    for (const { heads } of report.blocks) expect(heads.map((h) => Math.floor(h / 2))).toEqual([0, 1]);
    const reference = (await setup()).model;
    zeroAsReported(reference, report);
    expect(model.logits(probe).data).toAllClose(reference.logits(probe).data, { atol: 1e-4, rtol: 0 });
    const block = 4 * 128 * 64 + 3 * 128 * 288; // q, k, v, o of 2 heads (2 KV heads) and the MLP
    const before = 128 * 128 + 2 * 128 * 64 + 128 * 128 + 3 * 128 * 384;
    expect(dense - model.parameterCount()).toBe(4 * (before - block));
  });

  it('simulates what narrowing removes: one query head from each key/value group, zeroed', async () => {
    const { model, batches, probe } = await setup();
    const report = pruneStructured(model, batches, { mlpChannels: 0.25, heads: 0.5 });
    const narrowed = (await setup()).model;
    const narrowReport = pruneStructured(narrowed, batches, { mlpChannels: 0.25, heads: 0.5, narrow: true });
    const removed = (r: typeof report) => r.blocks.map(({ channels, heads }) => ({ channels, heads }));
    expect(removed(report)).toEqual(removed(narrowReport));
    for (const b of report.blocks) expect(b.seconds).toBeGreaterThan(0);
    expect(model.logits(probe).data).toAllClose(narrowed.logits(probe).data, { atol: 1e-4, rtol: 0 });
    // The model's own head counts are used; counts that disagree with them are refused.
    expect(() => pruneStructured(model, batches, { heads: 0.5, numHeads: 4, numKvHeads: 4 })).toThrow(
      'Invalid numKvHeads = 4: the model has 2.',
    );
  });

  it('refuses, before touching the model, what cannot keep one shape per block, and NaN weights', async () => {
    const { model, batches, probe } = await setup();
    const before = model.logits(probe).data;
    // A quarter of 4 heads is one head: it cannot leave both groups of 2 equally.
    for (const narrow of [true, false]) {
      expect(() => pruneStructured(model, batches, { heads: 0.25, narrow })).toThrow(InvalidArgumentError);
    }
    // A weight holding NaN (written into the layer's own array) is named, and nothing changes.
    const layer = model.blockLinearLayers(3).at(-1)!;
    const w = layer.getWeight().data;
    const kept = w[5]!;
    w[5] = Number.NaN;
    expect(() => pruneStructured(model, batches, { mlpChannels: 0.25, narrow: true })).toThrow(
      `${layer.name} weight holds a non-finite value (NaN) at flat index 5`,
    );
    w[5] = kept;
    expect(model.logits(probe).data).toEqual(before);
    expect(() =>
      pruneStructured(attentionToy(1), calibration(2), { mlpChannels: 0.5, narrow: true }),
    ).toThrow(/NarrowableLM/);
  });
});
