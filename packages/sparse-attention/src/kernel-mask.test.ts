import { Rng } from '@sparsekit/core';
import { createWasmBackend, referenceBackend, type WasmBackend } from '@sparsekit/sparse-formats';
import { pairwiseAttention } from '@sparsekit/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBlockMask } from './block-mask.js';
import { toAttentionMask } from './kernel-mask.js';
import type { MaskMod } from './mask-mods.js';
import { ATTENTION_PATTERNS, makePattern } from './pattern-table.js';

/** Plain attention with the mod applied to every (query, key) pair, in float64. */
const maskedAttention = (
  mod: MaskMod,
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
  heads: number,
  seq: number,
  dim: number,
) => pairwiseAttention(q, k, v, heads, seq, dim, seq, (p, j) => mod(0, 0, p, j));

describe('block masks on the attention kernels', () => {
  let wasm: WasmBackend;
  beforeAll(async () => {
    wasm = await createWasmBackend({ threads: 2, minParallelWork: 0 });
  });
  afterAll(async () => {
    await wasm.dispose();
  });

  const [heads, seq, dim, blockSize] = [2, 203, 16, 32];
  const rng = new Rng(5);
  const q = rng.normalArray(heads * seq * dim, 0, 2);
  const k = rng.normalArray(seq * dim);
  const v = rng.normalArray(seq * dim);
  const options = {
    window: 45,
    sinks: 3,
    docLength: 70,
    globals: [0, 100],
    patternBlock: 16,
    randomBlocks: 2,
  };

  it.each(ATTENTION_PATTERNS.map((p) => p.name))(
    '%s: the kernels read every allowed pair (exact where the table says so)',
    (name) => {
      const { mod, kernel, exact } = makePattern(name, options, seq);
      const bm = createBlockMask(mod, { qLen: seq, kvLen: seq, blockSize });
      const mask = toAttentionMask(bm, kernel);
      if (mask.kind !== 'blocks') throw new Error('expected a blocks mask');
      // Every allowed pair lies in a listed block.
      for (let i = 0; i < seq; i++)
        for (let j = 0; j < seq; j++)
          if (mod(0, 0, i, j))
            expect(mask.kvBlocks[Math.floor(i / blockSize)]!.includes(Math.floor(j / blockSize))).toBe(true);
      const args = { q, heads, seq, headDim: dim, keys: k, values: v, keyLength: seq, mask };
      const got = wasm.attention(args);
      expect(got).toAllClose(referenceBackend.attention(args), { atol: 2e-5, rtol: 2e-4 });
      if (exact)
        expect(got).toAllClose(maskedAttention(mod, q, k, v, heads, seq, dim), { atol: 2e-5, rtol: 2e-4 });
    },
  );

  it('refuses unknown patterns and non-square blocks with typed errors', () => {
    expect(() => makePattern('nope', {}, 10)).toThrow(/pattern/);
    const bm = createBlockMask(makePattern('causal', {}, 64).mod, {
      qLen: 64,
      kvLen: 64,
      blockSize: [16, 32],
    });
    expect(() => toAttentionMask(bm)).toThrow(/square/);
  });
});
