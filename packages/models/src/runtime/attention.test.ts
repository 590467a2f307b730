import { Rng } from '@sparsekit/core';
import { createWasmBackend } from '@sparsekit/sparse-formats';
import { describe, expect, it } from 'vitest';
import type { ModelConfig } from '../config.js';
import { attend } from './attention.js';
import { KvCache } from './kv-cache.js';
import { referenceKernel } from './linear.js';

describe('attention', () => {
  it('gives the same output with its products on a kernel as in loops (GQA, batch 2, after cached positions)', async () => {
    const config = { numHeads: 4, numKvHeads: 2, headDim: 8 } as ModelConfig;
    const rng = new Rng(3);
    const [batch, cached, seq] = [2, 5, 9];
    const qkv = (tokens: number) => ({
      q: rng.normalArray(tokens * 4 * 8),
      k: rng.normalArray(tokens * 2 * 8),
      v: rng.normalArray(tokens * 2 * 8),
    });
    const first = qkv(batch * cached);
    const next = qkv(batch * seq);
    const run = (kernel?: Parameters<typeof attend>[9]) => {
      const cache = new KvCache(1, batch, 2, 32, 8);
      attend(config, 0, first.q.slice(), first.k.slice(), first.v.slice(), batch, cached, cache, undefined);
      cache.length = cached;
      return attend(
        config,
        0,
        next.q.slice(),
        next.k.slice(),
        next.v.slice(),
        batch,
        seq,
        cache,
        undefined,
        kernel,
      );
    };
    const loops = run();
    expect(run(referenceKernel)).toAllClose(loops, { atol: 1e-5, rtol: 1e-5 });
    const backend = await createWasmBackend({ threads: 2 });
    try {
      expect(run(backend)).toAllClose(loops, { atol: 1e-5, rtol: 1e-5 });
    } finally {
      await backend.dispose();
    }
  });
});
