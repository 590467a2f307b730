import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { InvalidArgumentError, Rng, Tensor } from '@sparsekit/core';
import type { TransformerLM } from '@sparsekit/models';
import { loadHfModel, tinyLmPath } from '@sparsekit/models/node';
import { createWasmBackend, type WasmBackend } from '@sparsekit/sparse-formats';
import { randomOrthonormal } from '@sparsekit/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { slicedWidth, sliceGpt } from './slicegpt.js';

// End to end on tiny-lm (the bundled Llama-style model): calibration windows from its calibration
// text, held-out windows from its test text.
const SEQ = 128;
let wasm: WasmBackend;
beforeAll(async () => {
  wasm = await createWasmBackend();
});
afterAll(() => wasm.dispose());

async function load() {
  const loaded = await loadHfModel(tinyLmPath());
  loaded.model.backend = wasm;
  return loaded;
}

async function setup() {
  const { model, tokenizer } = await load();
  const windows = (file: string, count: number, offset: number) => {
    const ids = tokenizer!.encode(readFileSync(join(tinyLmPath(), file), 'utf8').slice(0, 20_000));
    return Array.from(
      { length: count },
      (_, w) =>
        new Tensor('i32', [1, SEQ], Int32Array.from(ids.slice(offset + w * SEQ, offset + (w + 1) * SEQ))),
    );
  };
  return { model, calibration: windows('calibration.txt', 8, 0), test: windows('test.txt', 6, 0) };
}

/** Mean next-token negative log-likelihood over the windows. */
function nll(model: TransformerLM, windows: Tensor<'i32'>[]): number {
  let sum = 0;
  let n = 0;
  for (const ids of windows) {
    const logits = model.logits(ids).data;
    const V = model.vocabSize;
    for (let t = 0; t + 1 < ids.size; t++) {
      const row = logits.subarray(t * V, (t + 1) * V);
      const max = row.reduce((a, b) => Math.max(a, b), -Infinity);
      const lse = max + Math.log(row.reduce((s, v) => s + Math.exp(v - max), 0));
      sum += lse - row[ids.data[t + 1]!]!;
      n++;
    }
  }
  return sum / n;
}

describe('sliceGpt on tiny-lm', () => {
  it('at 0% only rotates: the model computes the same function (1e-3)', async () => {
    const { model, calibration, test } = await setup();
    const before = model.logits(test[0]!).data;
    const report = await sliceGpt(model, calibration, { sparsity: 0 });
    expect(report.slicedWidth).toBe(128);
    expect(model.logits(test[0]!).data).toAllClose(before, { atol: 1e-3, rtol: 0 });
  });

  it('gives a smaller dense model that beats slicing along random directions', async () => {
    const { model, calibration, test } = await setup();
    const dense = nll(model, test);
    const events: number[] = [];
    const report = await sliceGpt(model, calibration, {
      sparsity: 0.25,
      onProgress: (e) => events.push(e.current),
    });
    expect(events).toEqual([1, 2, 3, 4]);
    expect(report.slicedWidth).toBe(96);
    expect(model.hiddenSize).toBe(96);
    expect(report.parameters.after).toBeLessThan(report.parameters.before);
    expect(report.points).toHaveLength(1 + 2 * model.numBlocks);
    for (const p of report.points.slice(0, -1)) {
      expect(p.kept).toBe(96);
      // PCA keeps more than the kept share of the signal's energy.
      expect(p.energyKept).toBeGreaterThan(96 / 128);
    }
    expect(report.points.at(-1)!.kept).toBe(128); // the head's input is not sliced by default
    const perPoint = report.points.reduce((t, p) => t + p.seconds, 0);
    expect(perPoint).toBeGreaterThan(0);
    expect(perPoint).toBeLessThanOrEqual(report.seconds);
    const sliced = nll(model, test);
    // Same widths along random orthonormal directions instead of principal ones.
    const { model: random } = await load();
    random.foldNorms();
    const rng = new Rng(7);
    const points = [
      { at: 'embeddings' } as const,
      ...[0, 1, 2, 3].flatMap((block) => [
        { at: 'attention', block } as const,
        { at: 'mlp', block } as const,
      ]),
    ];
    points.forEach((p, i) => {
      const n = random.streamWidth(p);
      const kept = i === points.length - 1 ? n : 96;
      random.rotateStream(
        p,
        new Tensor(
          'f32',
          [n, kept],
          randomOrthonormal(() => rng.normal(), n, kept),
        ),
      );
    });
    const randomNll = nll(random, test);
    expect(sliced).toBeGreaterThan(dense);
    expect(sliced - dense).toBeLessThan((randomNll - dense) / 2);
  });

  it('rejects impossible targets, small calibration sets and non-finite weights, and leaves the model as it was on failure', async () => {
    const { model, calibration, test } = await setup();
    const before = model.logits(test[0]!).data;
    for (const sparsity of [1, -0.1, Number.NaN]) {
      await expect(sliceGpt(model, calibration, { sparsity })).rejects.toThrow(InvalidArgumentError);
    }
    await expect(sliceGpt(model, calibration, { sparsity: 0.99 })).rejects.toThrow(/leaves no coordinates/);
    await expect(
      sliceGpt(model, [new Tensor('i32', [1, 16], new Int32Array(16))], { sparsity: 0.2 }),
    ).rejects.toThrow(/at least 128 calibration tokens/);
    const layer = model.blockLinearLayers(1).at(-1)!;
    const w = layer.getWeight().data;
    const kept = w[5]!;
    w[5] = Number.POSITIVE_INFINITY;
    await expect(sliceGpt(model, calibration, { sparsity: 0.2 })).rejects.toThrow(
      `${layer.name} weight holds a non-finite value (Infinity) at flat index 5`,
    );
    w[5] = kept;
    const abort = new AbortController();
    const failing = sliceGpt(model, calibration, {
      sparsity: 0.3,
      signal: abort.signal,
      onProgress: (e) => {
        if (e.current === 2) abort.abort(new Error('stop'));
      },
    });
    await expect(failing).rejects.toThrow('stop');
    expect(model.hiddenSize).toBe(128);
    expect(model.config.normWidth).toBeUndefined();
    expect(model.logits(test[0]!).data).toEqual(before);
  });

  it('computes kept widths as the reference does', () => {
    expect([0.1, 0.2, 0.25, 0.3].map((s) => slicedWidth(128, s))).toEqual([112, 96, 96, 88]);
    expect(slicedWidth(4096, 0.25)).toBe(3072);
    expect(slicedWidth(100, 0.1, 1)).toBe(90);
  });
});
