import { UnsupportedOpError } from '@sparsekit/core';
import { backendConformance } from '@sparsekit/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createWasmBackend, type WasmBackend } from '../wasm/backend.js';
import { attention, keySegments } from './attention.js';
import { referenceBackend } from './reference-backend.js';

backendConformance('reference', () => referenceBackend);

let wasm: WasmBackend;
beforeAll(async () => {
  wasm = await createWasmBackend({ threads: 2, minParallelWork: 0 });
});
afterAll(async () => {
  await wasm.dispose();
});
backendConformance('wasm', () => wasm, { unsupported: ['sddmm'] });

describe('attention', () => {
  it('runs the products path and the loops to the same result', () => {
    const [heads, seq, dim] = [3, 12, 16];
    const q = Float32Array.from({ length: heads * seq * dim }, (_, i) => Math.sin(i));
    const keys = Float32Array.from({ length: seq * dim }, (_, i) => Math.cos(i * 0.7));
    const values = Float32Array.from({ length: seq * dim }, (_, i) => Math.sin(i * 0.3));
    const args = { q, heads, seq, headDim: dim, keys, values, keyLength: seq };
    expect(attention(args, referenceBackend.linear)).toAllClose(attention(args), { atol: 1e-6, rtol: 1e-5 });
  });

  it('lists the key ranges of each mask', () => {
    const out = new Int32Array(16);
    expect(keySegments({ kind: 'causal', window: 3, sinks: 2 }, 9, 12, out)).toBe(2);
    expect(Array.from(out.subarray(0, 4))).toEqual([0, 2, 7, 10]);
    // Blocks 0 and 1 merge into one range; causal cuts block 2 at the query.
    const blocks = {
      kind: 'blocks' as const,
      blockSize: 4,
      kvBlocks: [Int32Array.of(0, 1, 2)],
      causal: true,
    };
    expect(keySegments(blocks, 2, 12, out)).toBe(1);
    expect(Array.from(out.subarray(0, 2))).toEqual([0, 3]);
  });

  it('gives zeros to a query that reads no key, and refuses bad masks', () => {
    const q = new Float32Array(4).fill(1);
    const kv = new Float32Array(8).fill(1);
    const base = { q, heads: 1, seq: 1, headDim: 4, keys: kv, values: kv, keyLength: 2 };
    const none = { kind: 'positions' as const, positions: new Int32Array(0) };
    expect(Array.from(attention({ ...base, mask: none }))).toEqual([0, 0, 0, 0]);
    expect(() => attention({ ...base, mask: { kind: 'positions', positions: Int32Array.of(1, 0) } })).toThrow(
      /sorted, unique/,
    );
    expect(() => attention({ ...base, mask: { kind: 'positions', positions: Int32Array.of(2) } })).toThrow(
      /in \[0, 2\)/,
    );
    expect(() => attention({ ...base, keyLength: 3 })).toThrow(/keys/);
  });
});

describe('unsupported ops', () => {
  it('are typed errors naming the op and the backend', () => {
    try {
      wasm.sddmm();
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(UnsupportedOpError);
      expect(error).toMatchObject({ op: 'sddmm', backend: 'wasm', code: 'core/unsupported-op' });
    }
  });
});
