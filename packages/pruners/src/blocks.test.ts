import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Rng, Tensor } from '@sparsekit/core';
import { loadHfModel, tinyLmPath } from '@sparsekit/models/node';
import { inverseUpperFactor } from '@sparsekit/sparse-formats';
import { describe, expect, it } from 'vitest';
import { type BlockShape, parseBlockShape } from './blocks.js';
import { magnitude } from './methods/magnitude.js';
import { blockSaliencies, sparseGpt } from './methods/sparsegpt.js';
import { wanda } from './methods/wanda.js';
import { reconstructionError } from './metrics.js';
import { patternText, pruneModel } from './prune-model.js';
import { validateRecipe } from './recipe.js';
import { runRecipe } from './run-recipe.js';

/** Every R x C block of the mask is all pruned or all kept. */
function expectBlockAligned(mask: Uint8Array, rows: number, cols: number, b: BlockShape) {
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const corner = mask[Math.floor(r / b.rows) * b.rows * cols + Math.floor(c / b.cols) * b.cols];
      if (mask[r * cols + c] !== corner) throw new Error(`block at (${r}, ${c}) is split`);
    }
  }
}

const share = (mask: Uint8Array) => mask.reduce((s, v) => s + v, 0) / mask.length;

/** The plain reference: sum the scores of every block, prune the `count` lowest in each group of blocks. */
function referenceBlockMask(
  scores: (r: number, c: number) => number,
  rows: number,
  cols: number,
  b: BlockShape,
  sparsity: number,
  scope: 'layer' | 'block-row',
): Uint8Array {
  const blocks: { r: number; c: number; score: number }[] = [];
  for (let r = 0; r < rows; r += b.rows) {
    for (let c = 0; c < cols; c += b.cols) {
      let score = 0;
      for (let i = 0; i < b.rows; i++) for (let j = 0; j < b.cols; j++) score += scores(r + i, c + j);
      blocks.push({ r, c, score });
    }
  }
  const groups =
    scope === 'layer'
      ? [blocks]
      : Array.from({ length: rows / b.rows }, (_, g) => blocks.filter((x) => x.r === g * b.rows));
  const mask = new Uint8Array(rows * cols);
  for (const group of groups) {
    const sorted = [...group].sort((x, y) => x.score - y.score);
    for (const x of sorted.slice(0, Math.floor(group.length * sparsity))) {
      for (let i = 0; i < b.rows; i++) for (let j = 0; j < b.cols; j++) mask[(x.r + i) * cols + x.c + j] = 1;
    }
  }
  return mask;
}

/** Inputs with correlated features, and their Hessian 2/n X^T X. */
function calibration(rng: Rng, n: number, cols: number) {
  const x = new Float64Array(n * cols);
  for (let t = 0; t < n; t++) {
    const shared = rng.normal();
    for (let c = 0; c < cols; c++) x[t * cols + c] = rng.normal() * (1 + (c % 5)) + 0.8 * shared;
  }
  const H = new Float64Array(cols * cols);
  for (let t = 0; t < n; t++)
    for (let i = 0; i < cols; i++)
      for (let j = 0; j < cols; j++) H[i * cols + j]! += (2 / n) * x[t * cols + i]! * x[t * cols + j]!;
  return { x, H };
}

/** Inverse of a small symmetric positive definite matrix by Gauss-Jordan elimination (float64). */
function inverse(a: Float64Array, n: number): Float64Array {
  const m = Float64Array.from(a);
  const inv = new Float64Array(n * n);
  for (let i = 0; i < n; i++) inv[i * n + i] = 1;
  for (let p = 0; p < n; p++) {
    const d = m[p * n + p]!;
    for (let j = 0; j < n; j++) {
      m[p * n + j]! /= d;
      inv[p * n + j]! /= d;
    }
    for (let r = 0; r < n; r++) {
      if (r === p) continue;
      const f = m[r * n + p]!;
      for (let j = 0; j < n; j++) {
        m[r * n + j]! -= f * m[p * n + j]!;
        inv[r * n + j]! -= f * inv[p * n + j]!;
      }
    }
  }
  return inv;
}

describe('block shapes', () => {
  it('parses RxC and refuses anything else with a typed error', () => {
    expect(parseBlockShape('1x8')).toEqual({ rows: 1, cols: 8 });
    expect(parseBlockShape(' 16X1 ')).toEqual({ rows: 16, cols: 1 });
    for (const bad of ['1x0', 'ax2', '8', '2x2x2', '-1x4', '1x99999'])
      expect(() => parseBlockShape(bad), bad).toThrow(
        expect.objectContaining({ code: 'core/invalid-argument' }),
      );
  });
});

describe('block-sparse magnitude and Wanda', () => {
  const rng = new Rng(7);
  const rows = 16;
  const cols = 32;
  const w = rng.normalArray(rows * cols);
  const norms = Float64Array.from({ length: cols }, () => rng.uniform(0.1, 4));

  it('magnitude prunes the blocks with the smallest summed |w| over the layer (or per row of blocks)', () => {
    for (const block of [
      { rows: 1, cols: 4 },
      { rows: 1, cols: 8 },
      { rows: 4, cols: 1 },
      { rows: 2, cols: 4 },
    ]) {
      for (const scope of ['layer', 'row'] as const) {
        const { mask, weight } = magnitude(w, rows, cols, { sparsity: 0.5, block, scope });
        const expected = referenceBlockMask(
          (r, c) => Math.abs(w[r * cols + c]!),
          rows,
          cols,
          block,
          0.5,
          scope === 'layer' ? 'layer' : 'block-row',
        );
        expect(Array.from(mask)).toEqual(Array.from(expected));
        expectBlockAligned(mask, rows, cols, block);
        expect(share(mask)).toBe(0.5);
        for (let i = 0; i < w.length; i++) expect(weight[i]).toBe(mask[i] === 1 ? 0 : w[i]);
      }
    }
    // 1 x 1 blocks are unstructured pruning.
    expect(magnitude(w, rows, cols, { sparsity: 0.7, block: { rows: 1, cols: 1 } }).mask).toEqual(
      magnitude(w, rows, cols, { sparsity: 0.7 }).mask,
    );
  });

  it('Wanda compares summed |w| ||x|| of blocks within each row of blocks', () => {
    for (const block of [
      { rows: 1, cols: 8 },
      { rows: 8, cols: 1 },
    ]) {
      for (const sparsity of [0.5, 0.75]) {
        const { mask } = wanda(w, rows, cols, norms, { sparsity, block });
        const expected = referenceBlockMask(
          (r, c) => Math.abs(w[r * cols + c]!) * Math.sqrt(norms[c]!),
          rows,
          cols,
          block,
          sparsity,
          'block-row',
        );
        expect(Array.from(mask)).toEqual(Array.from(expected));
        expect(share(mask)).toBe(sparsity);
      }
    }
  });

  it('refuses blocks that do not tile the weight, and blocks with N:M', () => {
    expect(() => magnitude(w, rows, cols, { sparsity: 0.5, block: { rows: 1, cols: 5 } })).toThrow(
      /input width \(32\) to be a multiple of the block's 5 inputs/,
    );
    expect(() => wanda(w, rows, cols, norms, { sparsity: 0.5, block: { rows: 3, cols: 1 } })).toThrow(
      /output width \(16\) to be a multiple of the block's 3 rows/,
    );
    expect(() => magnitude(w, rows, cols, { n: 2, m: 4, block: { rows: 1, cols: 4 } })).toThrow(
      /unstructured sparsity, not an N:M pattern/,
    );
  });
});

describe('block-sparse SparseGPT', () => {
  const rng = new Rng(21);
  const rows = 12;
  const cols = 24;
  const w = rng.normalArray(rows * cols);
  const { H } = calibration(rng, 200, cols);

  it("scores a block by the OBS loss of removing it, compensated on the columns after it: w_Q' [(H_RR^-1)_QQ]^-1 w_Q", () => {
    const Hinv = inverseUpperFactor(H, cols, 'H');
    const W = Float64Array.from(w);
    for (const block of [
      { rows: 1, cols: 4 },
      { rows: 3, cols: 2 },
      { rows: 2, cols: 1 },
    ]) {
      const grid = blockSaliencies(W, rows, cols, Hinv, 0, cols, block);
      for (let q = 0; q < cols / block.cols; q++) {
        // Columns before the block are fixed; the rest R = [c0, cols) may move to compensate.
        const c0 = q * block.cols;
        const n = cols - c0;
        const HR = new Float64Array(n * n);
        for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) HR[i * n + j] = H[(c0 + i) * cols + c0 + j]!;
        const HRinv = inverse(HR, n);
        const C = block.cols;
        const S = new Float64Array(C * C);
        for (let i = 0; i < C; i++) for (let j = 0; j < C; j++) S[i * C + j] = HRinv[i * n + j]!;
        const Sinv = inverse(S, C);
        for (let g = 0; g < rows / block.rows; g++) {
          let loss = 0;
          for (let r = g * block.rows; r < (g + 1) * block.rows; r++) {
            for (let i = 0; i < C; i++)
              for (let j = 0; j < C; j++)
                loss += W[r * cols + c0 + i]! * Sinv[i * C + j]! * W[r * cols + c0 + j]!;
          }
          const got = grid[g * (cols / C) + q]!;
          expect(Math.abs(got - loss), `${block.rows}x${block.cols} block ${g},${q}`).toBeLessThan(
            1e-9 * (1 + loss),
          );
        }
      }
    }
  });

  it('1 x 1 blocks are unstructured SparseGPT exactly; blocks come out aligned at the target', () => {
    const plain = sparseGpt(w, rows, cols, H, { sparsity: 0.5 });
    const unit = sparseGpt(w, rows, cols, H, { sparsity: 0.5, block: { rows: 1, cols: 1 } });
    expect(unit.weight).toEqual(plain.weight);
    for (const block of [
      { rows: 1, cols: 4 },
      { rows: 1, cols: 8 },
      { rows: 4, cols: 1 },
    ]) {
      const { mask, weight } = sparseGpt(w, rows, cols, H, { sparsity: 0.5, block });
      expectBlockAligned(mask, rows, cols, block);
      expect(share(mask)).toBe(0.5);
      for (let i = 0; i < mask.length; i++) if (mask[i] === 1) expect(weight[i]).toBe(0);
    }
  });

  it('reconstructs better than magnitude blocks on correlated inputs', () => {
    const { H: H2 } = calibration(new Rng(4), 400, cols);
    for (const block of [
      { rows: 1, cols: 4 },
      { rows: 4, cols: 1 },
    ]) {
      const sgpt = sparseGpt(w, rows, cols, H2, { sparsity: 0.5, block });
      const mag = magnitude(w, rows, cols, { sparsity: 0.5, block });
      const e1 = reconstructionError(w, sgpt.weight, rows, cols, H2, 400);
      const e2 = reconstructionError(w, mag.weight, rows, cols, H2, 400);
      expect(e1, `${block.rows}x${block.cols}`).toBeLessThan(0.85 * e2);
    }
  });

  it('refuses a lazy-batch size that splits blocks, and blocks with N:M', () => {
    expect(() =>
      sparseGpt(w, rows, cols, H, { sparsity: 0.5, block: { rows: 1, cols: 8 }, blockSize: 12 }),
    ).toThrow(/blockSize/);
    expect(() => sparseGpt(w, rows, cols, H, { n: 2, m: 4, block: { rows: 1, cols: 4 } })).toThrow(
      /not an N:M/,
    );
  });
});

describe('block-sparse pruning of a model', () => {
  it('prunes every layer of tiny-lm in blocks, packs them as BSR, and the packed model computes the pruned one', async () => {
    const { model, tokenizer } = await loadHfModel(tinyLmPath());
    const ids = tokenizer!.encode(readFileSync(join(tinyLmPath(), 'calibration.txt'), 'utf8').slice(0, 4000));
    const batches = [0, 1, 2].map(
      (i) => new Tensor('i32', [1, 64], Int32Array.from(ids.slice(i * 64, (i + 1) * 64))),
    );
    const report = await runRecipe(
      model,
      batches,
      validateRecipe({ method: 'wanda', sparsity: 0.7, blocks: '1x8' }),
      {
        reconstructionError: false,
      },
    );
    expect(patternText(report.pattern!)).toBe('0.7 in 1x8 blocks');
    for (const l of model.linearLayers()) {
      const w = l.getWeight();
      const mask = w.data.map((v) => (v === 0 ? 1 : 0)) as unknown as Uint8Array;
      expectBlockAligned(Uint8Array.from(mask), l.outFeatures, l.inFeatures, { rows: 1, cols: 8 });
    }
    // Like Wanda's own rows: floor(16 x 0.7) = 11 of the 16 blocks of each 128-wide row (33 of 48 at 384).
    expect(report.sparsity).toBeCloseTo(11 / 16, 9);
    const input = new Tensor('i32', [1, 16], Int32Array.from(ids.slice(0, 16)));
    const pruned = model.forward(input, model.createCache(1));
    const again = await loadHfModel(tinyLmPath());
    const packed = await runRecipe(
      again.model,
      batches,
      { method: 'wanda', sparsity: 0.7, blocks: '1x8' },
      {
        reconstructionError: false,
        pack: true,
      },
    );
    expect(packed.sparsity).toBe(report.sparsity);
    for (const l of again.model.linearLayers()) {
      expect(l.matrix.format, l.name).toBe('bsr');
      expect(l.matrix.format === 'bsr' && [l.matrix.blockRows, l.matrix.blockCols]).toEqual([1, 8]);
    }
    const out = again.model.forward(input, again.model.createCache(1));
    expect(out.data).toAllClose(pruned.data, { atol: 1e-4, rtol: 1e-4 });
  });

  it('checks the blocks against every layer before anything changes', async () => {
    const { model } = await loadHfModel(tinyLmPath());
    const before = model.linearLayers().map((l) => l.getWeight().data.slice());
    await expect(
      pruneModel(model, [], { method: 'magnitude', sparsity: 0.5, blocks: { rows: 1, cols: 48 } }),
    ).rejects.toThrow(/multiple of the block's 48 inputs/);
    for (const [i, l] of model.linearLayers().entries()) expect(l.getWeight().data).toEqual(before[i]);
    expect(() => validateRecipe({ method: 'wanda', pattern: '2:4', blocks: '1x4' })).toThrow(
      /give sparsity, not pattern/,
    );
    expect(() => validateRecipe({ method: 'wanda', sparsity: 0.5, blocks: '1by4' })).toThrow(/recipe.blocks/);
    expect(() => validateRecipe({ method: 'slicegpt', sparsity: 0.2, blocks: '1x4' })).toThrow(/blocks/);
  });
});
