import { Tensor } from '@sparsekit/core';
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { UnsupportedModelError } from './errors.js';
import { hfTinyDir } from './hf/hf-tiny.test-util.js';
import { loadHfModel } from './hf/load.js';
import { tinyLmPath } from './hf/tiny-lm.js';
import {
  createOnnxDecoder,
  llamaDecodeOnnx,
  type OnnxRuntimeLike,
  onnxGenerationSpeed,
} from './onnx-llama.js';
import { randomLlama } from './random-llama.js';
import type { TransformerLM } from './runtime/model.js';

const runtime = ort as unknown as OnnxRuntimeLike;

/** onnxruntime's logits for `tokens` fed one per step against the runtime's for the whole sequence. */
async function expectSameLogits(model: TransformerLM, tokens: number[]): Promise<void> {
  const expected = model.logits(new Tensor('i32', [1, tokens.length], Int32Array.from(tokens))).data;
  const decoder = await createOnnxDecoder(runtime, llamaDecodeOnnx(model), { intraOpNumThreads: 1 });
  try {
    for (const pass of [0, 1]) {
      // A second pass after reset() starts again at position 0 with an empty cache.
      if (pass === 1) decoder.reset();
      for (let t = 0; t < tokens.length; t++) {
        const logits = await decoder.step(tokens[t]!);
        const row = expected.subarray(t * model.vocabSize, (t + 1) * model.vocabSize);
        expect(logits).toAllClose(row, { atol: 1e-4, rtol: 1e-4 });
      }
    }
  } finally {
    await decoder.release();
  }
}

describe('llamaDecodeOnnx', () => {
  it('decodes in onnxruntime to the runtime logits: random Llama with grouped-query attention, untied head', async () => {
    const model = randomLlama(
      { hidden: 64, intermediate: 96, heads: 4, kvHeads: 2, layers: 2, vocab: 40, maxPositions: 16 },
      3,
    );
    await expectSameLogits(model, [5, 17, 3, 39, 0, 22, 8, 11, 5]);
  });

  it('decodes the bundled tiny-lm (tied embeddings) to the runtime logits', async () => {
    const { model } = await loadHfModel(tinyLmPath());
    await expectSameLogits(model, [511, 72, 300, 9, 144, 17]);
  });

  it('measures decode speed in onnxruntime as generationSpeed does (prompt, then greedy tokens)', async () => {
    const model = randomLlama(
      { hidden: 32, intermediate: 48, heads: 2, kvHeads: 1, layers: 1, vocab: 20, maxPositions: 32 },
      1,
    );
    const graph = llamaDecodeOnnx(model);
    const decoder = await createOnnxDecoder(runtime, graph, { intraOpNumThreads: 1 });
    try {
      const s = await onnxGenerationSpeed(decoder, graph, { promptLength: 8, newTokens: 6, reps: 1 });
      expect(s.prefillTokensPerSecond).toBeGreaterThan(0);
      expect(s.decodeTokensPerSecond).toBeGreaterThan(0);
      expect(s.timeToFirstTokenMs).toBeCloseTo((8 / s.prefillTokensPerSecond) * 1000, 6);
    } finally {
      await decoder.release();
    }
  });

  it('refuses what it does not build, by name, and positions past the rotary tables', async () => {
    const { model: gpt2 } = await loadHfModel(hfTinyDir('gpt2'));
    expect(() => llamaDecodeOnnx(gpt2)).toThrow(UnsupportedModelError);
    expect(() => llamaDecodeOnnx(gpt2)).toThrow(/family 'gpt2'/);
    const small = randomLlama(
      { hidden: 16, intermediate: 16, heads: 2, kvHeads: 1, layers: 1, vocab: 8, maxPositions: 2 },
      0,
    );
    const decoder = await createOnnxDecoder(runtime, llamaDecodeOnnx(small));
    try {
      await decoder.step(1);
      await decoder.step(2);
      await expect(decoder.step(3)).rejects.toThrow(UnsupportedModelError);
    } finally {
      await decoder.release();
    }
  });
});
