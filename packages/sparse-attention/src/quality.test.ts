import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Tensor } from '@sparsekit/core';
import { loadHfModel, tinyLmPath } from '@sparsekit/models/node';
import { createWasmBackend } from '@sparsekit/sparse-formats';
import { describe, expect, it } from 'vitest';
import { quest } from './policies/quest.js';
import { streamingLlm } from './policies/streaming-llm.js';
import { decodeStepwise, recordSelections } from './quality.js';

const { model, tokenizer } = await loadHfModel(tinyLmPath());
const ids = tokenizer!
  .encode(readFileSync(join(tinyLmPath(), 'test.txt'), 'utf8').slice(0, 3000))
  .slice(0, 96);
const tokens = new Tensor('i32', [1, ids.length], Int32Array.from(ids));

describe('KV policy quality', () => {
  it('decoding token by token without a policy gives the model logits (float tolerance)', () => {
    const stepwise = decodeStepwise(model, () => undefined, { prefill: 5 }).logits(tokens) as Tensor<'f32'>;
    expect(stepwise.data).toAllClose(model.logits(tokens).data, { atol: 1e-4, rtol: 1e-4 });
  });

  it('a budget covering the context is dense; a small one is measured below dense, and more budget recalls more', () => {
    const full = decodeStepwise(model, () => quest({ budget: 128 })).logits(tokens) as Tensor<'f32'>;
    expect(full.data).toAllClose(model.logits(tokens).data, { atol: 1e-4, rtol: 1e-4 });
    const stats = [48, 80].map((budget) => {
      const recorder = recordSelections(quest({ budget }));
      decodeStepwise(model, () => recorder.policy).logits(tokens);
      return recorder.stats();
    });
    for (const s of stats) {
      expect(s.steps).toBeGreaterThan(0);
      expect(s.recall).toBeGreaterThan(0);
      expect(s.recall).toBeLessThan(1);
      expect(s.relativeError).toBeGreaterThan(0);
      expect(s.density).toBeLessThan(1);
    }
    expect(stats[1]!.recall).toBeGreaterThan(stats[0]!.recall);
    expect(stats[1]!.relativeError).toBeLessThan(stats[0]!.relativeError);
  });

  it('an evicting policy runs stepwise too (its cache keeps sinks + recent)', () => {
    const logits = decodeStepwise(model, () => streamingLlm({ sinks: 4, recent: 32 })).logits(
      tokens,
    ) as Tensor<'f32'>;
    expect(logits.data.every(Number.isFinite)).toBe(true);
    expect(() => decodeStepwise(model, () => undefined, { prefill: 0 })).toThrow(/prefill/);
  });

  it('the accelerate path: tiny-lm on the wasm backend (cache in its memory), Quest scoring there, as on the reference', async () => {
    const backend = await createWasmBackend({ threads: 2 });
    try {
      const { model: onWasm } = await loadHfModel(tinyLmPath(), { backend });
      const cache = onWasm.createCache(1);
      expect(cache.keys[0]!.buffer).toBeInstanceOf(SharedArrayBuffer);
      cache.dispose();
      const fast = decodeStepwise(onWasm, () => quest({ budget: 48, backend })).logits(
        tokens,
      ) as Tensor<'f32'>;
      const plain = decodeStepwise(model, () => quest({ budget: 48 })).logits(tokens) as Tensor<'f32'>;
      expect(fast.data).toAllClose(plain.data, { atol: 2e-3, rtol: 2e-3 });
    } finally {
      await backend.dispose();
    }
  });
});
