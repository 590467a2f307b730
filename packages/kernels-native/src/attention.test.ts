import { Rng } from '@sparsekit/core';
import { type AttentionArgs, type AttentionMask, attention } from '@sparsekit/sparse-formats';
import { describe, expect, it } from 'vitest';
import { nativeAvailability } from './load.js';
import { createNativeBackend } from './native-backend.js';

const available = nativeAvailability().available;

function args(
  rng: Rng,
  heads: number,
  seq: number,
  dim: number,
  keyLength: number,
  mask: AttentionMask,
): AttentionArgs {
  const normal = (n: number) => new Float32Array(n).map(() => rng.normal());
  return {
    q: normal(heads * seq * dim),
    heads,
    seq,
    headDim: dim,
    keys: normal(keyLength * dim),
    values: normal(keyLength * dim),
    keyLength,
    mask,
  };
}

const blocks = (
  size: number,
  keyLength: number,
  seqEnd: number,
  every: number,
  causal = true,
): AttentionMask => {
  const kv: Int32Array[] = [];
  for (let b = 0; b <= Math.floor((seqEnd - 1) / size); b++) {
    const list: number[] = [];
    for (let k = 0; k < Math.ceil(keyLength / size); k++) if (k === b || k % every === 0) list.push(k);
    kv.push(Int32Array.from(list));
  }
  return { kind: 'blocks', blockSize: size, kvBlocks: kv, causal };
};

describe.skipIf(!available)('native attention', () => {
  const masks: [string, (keyLength: number) => AttentionMask][] = [
    ['causal', () => ({ kind: 'causal' })],
    ['full', () => ({ kind: 'full' })],
    ['causal window with sinks', () => ({ kind: 'causal', window: 7, sinks: 2 })],
    ['causal window', () => ({ kind: 'causal', window: 16 })],
    ['block list', (k) => blocks(8, k, k, 3)],
    ['block list with a window and sinks', (k) => ({ ...blocks(8, k, k, 2), window: 12, sinks: 3 })],
    [
      'positions',
      (k) => ({
        kind: 'positions',
        positions: Int32Array.from({ length: k }, (_, i) => i).filter((i) => i % 3 !== 1),
      }),
    ],
  ];
  for (const kernels of ['avx512', 'avx2', 'portable'] as const) {
    for (const threads of [1, 2, 3]) {
      it(`matches the reference on every mask (${kernels}, ${threads} threads), decode and prefill`, () => {
        const backend = createNativeBackend({ threads, kernels });
        const rng = new Rng(11 + threads);
        for (const [name, make] of masks) {
          for (const [heads, seq, dim, keyLength] of [
            [4, 1, 64, 300],
            [2, 3, 5, 40],
            [3, 20, 32, 50],
            [1, 1, 128, 4000],
          ] as const) {
            const a = args(rng, heads, seq, dim, keyLength, make(keyLength));
            const expected = attention(a);
            expect(backend.attention(a), `${name} ${heads}x${seq}x${dim} over ${keyLength}`).toAllClose(
              expected,
              {
                atol: 2e-5,
                rtol: 1e-4,
              },
            );
          }
        }
      });
    }
  }

  it('gives zeros to a query that reads no key, writes into `out`, and honours the scale and query offset', () => {
    const backend = createNativeBackend({ threads: 2 });
    const rng = new Rng(5);
    const empty = args(rng, 2, 2, 8, 10, { kind: 'positions', positions: new Int32Array(0) });
    expect(Array.from(backend.attention(empty))).toEqual(new Array(32).fill(0));
    const a = { ...args(rng, 2, 2, 8, 30, { kind: 'causal', window: 4 }), scale: 0.3, queryOffset: 9 };
    const out = new Float32Array(32);
    expect(backend.attention({ ...a, out })).toBe(out);
    expect(out).toAllClose(attention(a), { atol: 1e-5, rtol: 1e-4 });
  });

  it('refuses masks that read outside the keys with the typed error of the contract', () => {
    const backend = createNativeBackend({ threads: 1 });
    const a = args(new Rng(2), 1, 1, 4, 6, { kind: 'positions', positions: Int32Array.of(1, 9) });
    expect(() => backend.attention(a)).toThrow(/mask.positions/);
  });
});
