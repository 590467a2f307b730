import { Hooks, InvalidArgumentError, Tensor } from '@sparsekit/core';
import {
  type Backend,
  type GatherGemvArgs,
  type LinearOptions,
  referenceBackend,
  type SparseMatrix,
} from '@sparsekit/sparse-formats';
import { describe, expect, it } from 'vitest';
import { hfTinyDir, hfTinyExpected } from '../hf/hf-tiny.test-util.js';
import { loadHfModel } from '../hf/load.js';
import type { TransformerLM } from './model.js';

/** The reference backend, counting gather-GEMV calls (columns read) and row-subset linears (rows read). */
function countingBackend() {
  const counts = { gathers: 0, columnsRead: 0, columnsTotal: 0, rowCalls: 0, rowsRead: 0, rowsTotal: 0 };
  const backend: Backend = Object.assign(Object.create(referenceBackend) as Backend, {
    name: 'counting',
    linear(x: Float32Array, batch: number, w: SparseMatrix, options?: LinearOptions) {
      if (options?.rows !== undefined) {
        counts.rowCalls++;
        counts.rowsRead += options.rows.length;
        counts.rowsTotal += w.rows;
      }
      return referenceBackend.linear(x, batch, w, options);
    },
    gatherGemv(args: GatherGemvArgs) {
      counts.gathers++;
      counts.columnsRead += args.active.length;
      counts.columnsTotal += args.w.cols;
      return referenceBackend.gatherGemv(args);
    },
  });
  return { backend, counts };
}

/** Zero the smaller half (by magnitude) of every linear input: a stand-in for thresholds. */
function halfZeroHooks(): Hooks {
  const hooks = new Hooks();
  hooks.add('linear.input', (t) => {
    const x = t.data.slice();
    const sorted = Float32Array.from(x, Math.abs).sort();
    const cut = sorted[Math.floor(sorted.length / 2)]!;
    for (let i = 0; i < x.length; i++) if (Math.abs(x[i]!) < cut) x[i] = 0;
    return new Tensor('f32', t.shape, x);
  });
  return hooks;
}

function decodeLogits(model: TransformerLM, tokens: readonly number[], hooks: Hooks): Float32Array[] {
  const cache = model.createCache(1);
  model.forward(new Tensor('i32', [1, 3], Int32Array.from(tokens.slice(0, 3))), cache, { hooks });
  return tokens
    .slice(3)
    .map((t) => model.forward(new Tensor('i32', [1, 1], Int32Array.of(t)), cache, { hooks }).data);
}

describe('sparse decode (column-gather GEMV on sparse one-token inputs)', () => {
  it.each(['llama', 'gpt2'] as const)(
    "%s: the gather path gives the dense path's logits and reads only nonzero inputs' columns",
    async (family) => {
      const { model } = await loadHfModel(hfTinyDir(family));
      const tokens = hfTinyExpected(family).tokens.slice(0, 8);
      const dense = decodeLogits(model, tokens, halfZeroHooks());
      const { backend, counts } = countingBackend();
      model.backend = backend;
      model.sparseDecode = { minZeroShare: 0.25 };
      const sparse = decodeLogits(model, tokens, halfZeroHooks());
      for (let t = 0; t < dense.length; t++)
        for (let i = 0; i < dense[t]!.length; i++)
          expect(Math.abs(sparse[t]![i]! - dense[t]![i]!)).toBeLessThanOrEqual(
            1e-4 + 1e-4 * Math.abs(dense[t]![i]!),
          );
      // Every block product at decode gathered (the LM head's input is dense and stays dense).
      const perToken = model.linearLayers().length;
      expect(counts.gathers).toBe(perToken * dense.length);
      const share = counts.columnsRead / counts.columnsTotal;
      expect(share).toBeGreaterThan(0.45);
      expect(share).toBeLessThanOrEqual(0.55);
      // Below the zero share, the dense kernel runs.
      model.sparseDecode = { minZeroShare: 0.9 };
      const before = counts.gathers;
      decodeLogits(model, tokens, halfZeroHooks());
      expect(counts.gathers).toBe(before);
      model.sparseDecode = undefined;
      expect(model.sparseDecode).toBeUndefined();
      expect(() => {
        model.sparseDecode = { minZeroShare: 1.5 };
      }).toThrow(InvalidArgumentError);
    },
  );

  it('gated MLPs: up runs only where act(gate) is nonzero, and a predictor chooses the rows of gate and up', async () => {
    const { model } = await loadHfModel(hfTinyDir('llama'));
    const tokens = hfTinyExpected('llama').tokens.slice(0, 8);
    const width = model.config.intermediateSize;
    // act(gate) zero at odd channels, as CATS' thresholds or a predictor would leave it.
    const oddGateZero = () => {
      const hooks = new Hooks();
      hooks.add('mlp.gate', (t) => t.data.map((v, i) => (i % 2 === 1 ? 0 : v)));
      return hooks;
    };
    const dense = decodeLogits(model, tokens, oddGateZero());
    const { backend, counts } = countingBackend();
    model.backend = backend;
    model.sparseDecode = { minZeroShare: 0.25 };
    const sparse = decodeLogits(model, tokens, oddGateZero());
    const close = (a: Float32Array[], b: Float32Array[]) => {
      for (let t = 0; t < a.length; t++)
        for (let i = 0; i < a[t]!.length; i++)
          expect(Math.abs(a[t]![i]! - b[t]![i]!)).toBeLessThanOrEqual(1e-4 + 1e-4 * Math.abs(b[t]![i]!));
    };
    close(sparse, dense);
    expect(counts.rowCalls).toBe(model.numBlocks * dense.length); // up, once per block and token
    expect(counts.rowsRead / counts.rowsTotal).toBeCloseTo(0.5, 2);
    // A predictor choosing the even channels: gate and up compute half their rows, same logits.
    const even = Int32Array.from({ length: width / 2 }, (_, i) => 2 * i);
    const seen: number[] = [];
    model.sparseDecode = {
      minZeroShare: 0.25,
      mlpRows: (block) => {
        seen.push(block);
        return even;
      },
    };
    const before = counts.rowCalls;
    // (The prompt runs on all tokens at once, where no predictor runs: the hook zeroes its odd channels.)
    const predicted = decodeLogits(model, tokens, oddGateZero());
    close(predicted, dense);
    expect(counts.rowCalls - before).toBe(2 * model.numBlocks * dense.length); // gate and up
    expect(seen.slice(0, model.numBlocks)).toEqual([...Array(model.numBlocks).keys()]);
  });
});
