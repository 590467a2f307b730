import { type BlockwiseLM, type CalibrationHook, type LinearLayer, Rng, Tensor } from '@sparsekit/core';
import { describe, expect, it } from 'vitest';
import { calibration, toyModel } from '../toy-model.test-util.js';
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
    expect(() => pruneBlocks(w, rows, cols, 0.5, [3, 3])).toThrow(/divide/);
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
    runBlock(i: number, h: Tensor<'f32'>, hook?: CalibrationHook) {
      const tokens = h.size / 16;
      hook?.(q, new Tensor('f32', [tokens, 16], h.data));
      const a = q.apply(h.data, tokens).map((v) => Math.max(0, v));
      hook?.(o, new Tensor('f32', [tokens, 16], a));
      const mid = h.data.slice();
      const d = o.apply(a, tokens);
      for (let k = 0; k < mid.length; k++) mid[k]! += d[k]!;
      return base.runBlock(i, new Tensor('f32', h.shape, mid), hook);
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
  });
});
