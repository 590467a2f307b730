import { Rng } from '@sparsekit/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { attention as reference } from '../backend/attention.js';
import type { AttentionArgs, AttentionMask } from '../backend/contract.js';
import { attentionPaths } from './attention.js';
import { createWasmBackend, type WasmBackend } from './backend.js';

// The kernels compute in f32 with a polynomial exp; the reference loops run in float64.
const TOLERANCE = { atol: 2e-5, rtol: 2e-4 };

function randomArgs(rng: Rng, heads: number, seq: number, dim: number, keyLength: number): AttentionArgs {
  const fill = (n: number, s = 1) => Float32Array.from({ length: n }, () => rng.normal() * s);
  return {
    q: fill(heads * seq * dim, 2),
    heads,
    seq,
    headDim: dim,
    keys: fill(keyLength * dim),
    values: fill(keyLength * dim),
    keyLength,
  };
}

function randomBlocks(rng: Rng, queryBlocks: number, keyBlocks: number, keep: number): Int32Array[] {
  return Array.from({ length: queryBlocks }, () => {
    const list: number[] = [];
    for (let b = 0; b < keyBlocks; b++) if (rng.uniform() < keep) list.push(b);
    return Int32Array.from(list);
  });
}

describe.each([1, 2])('wasm attention kernels, %i thread(s)', (threads) => {
  let backend: WasmBackend;
  beforeAll(async () => {
    backend = await createWasmBackend({ threads, minParallelWork: 0 });
  });
  afterAll(async () => {
    await backend.dispose();
  });

  it('decode (attend_rows) matches the float64 loops under every mask kind', () => {
    const rng = new Rng(11);
    for (const [heads, dim, keyLength] of [
      [1, 4, 1],
      [4, 8, 37],
      [2, 64, 300],
      [8, 128, 1000],
    ] as const) {
      const masks: AttentionMask[] = [
        { kind: 'causal' },
        { kind: 'full' },
        { kind: 'causal', window: 7, sinks: 2 },
        {
          kind: 'positions',
          positions: Int32Array.from({ length: keyLength }, (_, i) => i).filter(() => rng.uniform() < 0.3),
        },
      ];
      for (const mask of masks) {
        const args = { ...randomArgs(rng, heads, 1, dim, keyLength), mask };
        const before = attentionPaths.rows;
        const got = backend.attention(args);
        expect(attentionPaths.rows).toBe(before + 1);
        expect(got).toAllClose(reference(args), TOLERANCE);
      }
    }
  });

  it('a few queries with a causal mask and a query offset run as decode', () => {
    const rng = new Rng(12);
    const args = { ...randomArgs(rng, 3, 5, 16, 40), queryOffset: 20 };
    expect(backend.attention(args)).toAllClose(reference(args), TOLERANCE);
  });

  it('prefill under block lists (attend_blocks) matches, with causality, windows and sinks', () => {
    const rng = new Rng(13);
    for (const [heads, seq, dim, blockSize] of [
      [1, 9, 4, 4],
      [2, 70, 16, 16],
      [4, 200, 64, 32],
      [2, 300, 128, 128],
    ] as const) {
      const queryBlocks = Math.ceil(seq / blockSize);
      for (const extra of [{}, { causal: true }, { causal: true, window: 21, sinks: 3 }]) {
        const mask: AttentionMask = {
          kind: 'blocks',
          blockSize,
          kvBlocks: randomBlocks(rng, queryBlocks, queryBlocks, 0.6),
          ...extra,
        };
        const args = { ...randomArgs(rng, heads, seq, dim, seq), mask };
        const before = attentionPaths.blocks;
        const got = backend.attention(args);
        expect(attentionPaths.blocks).toBe(before + 1);
        expect(got).toAllClose(reference(args), TOLERANCE);
      }
    }
  });

  it('prefill with a causal window (and sinks) reads only the blocks the window touches', () => {
    const rng = new Rng(14);
    for (const mask of [
      { kind: 'causal', window: 50 },
      { kind: 'causal', window: 100, sinks: 4 },
    ] as AttentionMask[]) {
      const args = { ...randomArgs(rng, 2, 333, 32, 400), mask };
      expect(backend.attention(args)).toAllClose(reference(args), TOLERANCE);
    }
  });

  it('reads keys and values in place from allocate(), and gives the same result as copies', () => {
    const rng = new Rng(15);
    const plain = randomArgs(rng, 4, 1, 64, 500);
    const keys = backend.allocate(plain.keys.length + 64);
    const values = backend.allocate(plain.values.length + 64);
    keys.set(plain.keys);
    values.set(plain.values);
    const positions = Int32Array.from({ length: 100 }, (_, i) => i * 5);
    for (const mask of [{ kind: 'causal' }, { kind: 'positions', positions }] as AttentionMask[]) {
      const want = reference({ ...plain, mask });
      expect(backend.attention({ ...plain, keys, values, mask })).toAllClose(want, TOLERANCE);
      // A subarray view (one lane of a larger cache) is read in place too.
      const lane = keys.subarray(0, plain.keys.length);
      expect(backend.attention({ ...plain, keys: lane, values, mask })).toAllClose(want, TOLERANCE);
    }
    backend.free(keys);
    backend.free(values);
  });

  it('a query that reads no key gets zeros; large scores stay finite', () => {
    const rng = new Rng(16);
    const args = {
      ...randomArgs(rng, 2, 1, 8, 10),
      mask: { kind: 'positions', positions: new Int32Array(0) } as AttentionMask,
    };
    expect(Array.from(backend.attention(args)).every((v) => v === 0)).toBe(true);
    const big = randomArgs(rng, 2, 1, 8, 50);
    for (let i = 0; i < big.q.length; i++) big.q[i] = big.q[i]! * 200;
    const got = backend.attention(big);
    expect(got.every(Number.isFinite)).toBe(true);
    expect(got).toAllClose(reference(big), TOLERANCE);
  });
});
