import { f16BitsToF32, NonFiniteError, Rng, ShapeMismatchError, Tensor } from '@sparsekit/core';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { denseCase, FC_OPTIONS } from '../arbitraries.test-util.js';
import { fromDense } from '../convert.js';
import { linear, spmm } from '../kernels/reference.js';
import type { FormatName, SparseMatrix } from '../types.js';
import { createWasmBackend, type WasmBackend } from './backend.js';
import { KERNEL_NAMES } from './prepare.js';

const VARIANTS: Array<[string, FormatName, object]> = [
  ['dense f32', 'dense', {}],
  ['dense f16', 'dense', { dtype: 'f16' }],
  ['csr i32 f32', 'csr', {}],
  ['csr u16 f32', 'csr', { indexType: 'u16' }],
  ['csr i32 f16', 'csr', { dtype: 'f16' }],
  ['csr u16 f16', 'csr', { indexType: 'u16', dtype: 'f16' }],
  ['coo (runs as csr)', 'coo', {}],
  ['csc (runs as csr)', 'csc', {}],
  ['nm 2:4 f32', 'nm', { n: 2, m: 4 }],
  ['nm 2:4 f16', 'nm', { n: 2, m: 4, dtype: 'f16' }],
  ['bitmask f32', 'bitmask', {}],
  ['bitmask f16', 'bitmask', { dtype: 'f16' }],
  ['bsr 2x4 f32', 'bsr', { blockShape: [2, 4] }],
  ['bsr 2x4 u16 f16', 'bsr', { blockShape: [2, 4], indexType: 'u16', dtype: 'f16' }],
];

describe.each([1, 2])('wasm backend, %i thread(s)', (threads) => {
  let backend: WasmBackend;
  beforeAll(async () => {
    backend = await createWasmBackend({ threads, minParallelWork: 0 });
  });
  afterAll(async () => {
    await backend.dispose();
  });

  it.each(VARIANTS)(
    '%s linear matches the reference kernel (batch 1..33, odd shapes)',
    (_, format, options) => {
      fc.assert(
        fc.property(
          denseCase({ rowMultiple: 2, colMultiple: 4, nm: [2, 4] }),
          fc.constantFrom(1, 2, 3, 4, 5, 8, 16, 17, 33),
          ({ rows, cols, values }, batch) => {
            const w: SparseMatrix = fromDense(new Tensor('f32', [rows, cols], values), format, options);
            const rng = new Rng(rows * 131 + cols * 7 + batch);
            const x = rng.normalArray(batch * cols);
            const bias = rng.normalArray(rows);
            expect(backend.linear(x, batch, w, { bias })).toAllClose(linear(x, batch, w, { bias }), {
              atol: 1e-4,
              rtol: 1e-4,
            });
          },
        ),
        { ...FC_OPTIONS, numRuns: 30 },
      );
    },
  );

  it.each([
    ['4x1 f32', [4, 1], {}],
    ['8x1 u16 f16', [8, 1], { indexType: 'u16', dtype: 'f16' }],
    ['16x1 f32', [16, 1], {}],
  ] as const)(
    'BSR %s (tall blocks along the outputs) matches the reference kernel',
    (_, blockShape, options) => {
      const rng = new Rng(17);
      for (const [rows, cols] of [
        [16, 5],
        [64, 96],
      ] as const) {
        const values = rng.normalArray(rows * cols);
        const [R] = blockShape;
        // Whole blocks dropped, one block column kept everywhere.
        for (let br = 0; br < rows / R; br++)
          for (let c = 1; c < cols; c++)
            if (rng.uniform() < 0.6) for (let r = 0; r < R; r++) values[(br * R + r) * cols + c] = 0;
        const w = fromDense(new Tensor('f32', [rows, cols], values), 'bsr', { blockShape, ...options });
        for (const batch of [1, 2, 5]) {
          const x = rng.normalArray(batch * cols);
          const bias = rng.normalArray(rows);
          expect(backend.linear(x, batch, w, { bias })).toAllClose(linear(x, batch, w, { bias }), {
            atol: 1e-4,
            rtol: 1e-4,
          });
        }
      }
    },
  );

  it('handles shapes not divisible by the vector width or tile, and larger N:M patterns', () => {
    const rng = new Rng(5);
    for (const [rows, cols, n, m] of [
      [37, 24, 3, 8],
      [9, 48, 1, 16],
      [130, 72, 4, 8],
    ] as const) {
      const values = rng.normalArray(rows * cols);
      const t = new Tensor('f32', [rows, cols], values);
      for (const batch of [1, 7, 20]) {
        const x = rng.normalArray(batch * cols);
        const dense = fromDense(t, 'dense');
        expect(backend.linear(x, batch, dense)).toAllClose(linear(x, batch, dense), {
          atol: 1e-4,
          rtol: 1e-4,
        });
        const keep = new Uint8Array(rows * cols);
        for (let g = 0; g < rows * cols; g += m) for (let s = 0; s < n; s++) keep[g + ((s * 3 + g) % m)] = 1;
        const nm = fromDense(t, 'nm', { keep, n, m });
        expect(backend.linear(x, batch, nm)).toAllClose(linear(x, batch, nm), { atol: 1e-4, rtol: 1e-4 });
      }
    }
  });

  it('decodes every finite nonzero f16 value exactly, subnormals included (batch 1 and 64)', () => {
    // W [rows, 64] holds every finite nonzero half once (padded with 1.0); in the 2:4 matrix every
    // second slot is zero. y = x W^T with x = e_j reads column j back exactly.
    const halves: number[] = [];
    for (let h = 1; h < 0x10000; h++)
      if ((h & 0x7c00) !== 0x7c00 && h !== 0x8000) halves.push(f16BitsToF32(h));
    while (halves.length % 128 !== 0) halves.push(1);
    const cols = 64;
    const values = Float32Array.from(halves);
    const spread = new Float32Array(values.length * 2);
    for (let i = 0; i < values.length; i++) spread[2 * i] = values[i]!;
    const cases: Array<[FormatName, Float32Array, object]> = [
      ['dense', values, {}],
      ['csr', values, { indexType: 'u16' }],
      ['bitmask', values, {}],
      ['nm', spread, { n: 2, m: 4 }],
    ];
    for (const [format, data, options] of cases) {
      const rows = data.length / cols;
      const w = fromDense(new Tensor('f32', [rows, cols], data), format, { ...options, dtype: 'f16' });
      const identity = new Float32Array(cols * cols);
      for (let j = 0; j < cols; j++) identity[j * cols + j] = 1;
      const all = backend.linear(identity, cols, w);
      for (let j = 0; j < cols; j++) {
        const x = identity.subarray(j * cols, (j + 1) * cols);
        const column = Float32Array.from({ length: rows }, (_, o) => data[o * cols + j]!);
        expect(backend.linear(x, 1, w), `${format} batch 1 column ${j}`).toEqual(column);
        expect(all.subarray(j * rows, (j + 1) * rows), `${format} batch 64 column ${j}`).toEqual(column);
      }
    }
  });

  it('spmv and spmm agree with the reference; errors are typed', () => {
    const rng = new Rng(9);
    const a = fromDense(new Tensor('f32', [12, 20], rng.normalArray(240)), 'csr', { threshold: 0.8 });
    const b = rng.normalArray(20 * 6);
    expect(backend.spmm(a, b, 6)).toAllClose(spmm(a, b, 6), { atol: 1e-4, rtol: 1e-4 });
    expect(() => backend.linear(new Float32Array(3), 1, a)).toThrow(ShapeMismatchError);
    const inf = fromDense(
      new Tensor('f32', [1, 4], Float32Array.of(1, Number.POSITIVE_INFINITY, 0, 2)),
      'csr',
      { dtype: 'f16' },
    );
    expect(() => backend.linear(new Float32Array(4), 1, inf)).toThrow(NonFiniteError);
  });

  it('linear with rows (dense, batch 1) computes only the listed rows, f32 and f16, with bias', () => {
    const rng = new Rng(21);
    const [rows, cols] = [301, 70];
    const values = rng.normalArray(rows * cols);
    const x = rng.normalArray(cols);
    const bias = rng.normalArray(rows);
    const list = Int32Array.from(rng.permutation(rows).slice(0, 150));
    for (const dtype of ['f32', 'f16'] as const) {
      const w = fromDense(new Tensor('f32', [rows, cols], values), 'dense', { dtype });
      const want = linear(x, 1, w, { bias });
      const got = backend.linear(x, 1, w, { bias, rows: list, out: new Float32Array(rows).fill(Number.NaN) });
      const keep = new Set(list);
      for (let o = 0; o < rows; o++) {
        if (keep.has(o)) expect(Math.abs(got[o]! - want[o]!)).toBeLessThan(1e-4 * (1 + Math.abs(want[o]!)));
        else expect(got[o]).toBe(0);
      }
      backend.release(w);
    }
  });

  it('runs a dense matrix whose values live in wasm memory in place, following changes to them', () => {
    const rng = new Rng(21);
    const [rows, cols, batch] = [37, 24, 3];
    const values = backend.allocate(rows * cols);
    const x = rng.normalArray(batch * cols);
    for (let round = 0; round < 2; round++) {
      values.set(rng.normalArray(rows * cols));
      const w = fromDense(new Tensor('f32', [rows, cols], values.slice()), 'dense');
      const live = { ...w, values } as SparseMatrix;
      expect(backend.linear(x, batch, live)).toAllClose(linear(x, batch, w), { atol: 1e-5, rtol: 1e-5 });
    }
    backend.free(values);
    // f16 bits in a view of the same storage run in place too.
    const store = backend.allocate((rows * cols) / 2 + 1);
    const bits = new Uint16Array(store.buffer, store.byteOffset, rows * cols);
    const w16 = fromDense(new Tensor('f32', [rows, cols], rng.normalArray(rows * cols)), 'dense', {
      dtype: 'f16',
    });
    bits.set(w16.values as Uint16Array);
    expect(backend.linear(x, batch, { ...w16, values: bits } as SparseMatrix)).toAllClose(
      linear(x, batch, w16),
      {
        atol: 1e-4,
        rtol: 1e-4,
      },
    );
    backend.free(store);
  });

  it('measures a STREAM triad bandwidth', () => {
    expect(backend.triad(1 << 20, 2)).toBeGreaterThan(0.1);
  });

  it('a kernel that traps on another thread is an error for the caller, not a hang; the pool still works', () => {
    // A triad whose second part writes far past the memory: the worker (or, with one thread, the
    // caller) traps; the call throws once every part is done, and the next call runs normally.
    const pool = (backend as unknown as { pool: { run(task: unknown): void } }).pool;
    const far = 0xfff00000;
    const task = {
      op: KERNEL_NAMES.indexOf('triad'),
      args: [far, far, far, 1, 0, 0],
      r0Position: 4,
      r1Position: 5,
      parts: Int32Array.of(0, 0, 64),
    };
    expect(() => pool.run(threads === 1 ? { ...task, parts: Int32Array.of(0, 64) } : task)).toThrow();
    expect(backend.triad(1 << 16, 1)).toBeGreaterThan(0);
  });

  it('frees the operands of matmul and attention after the call', () => {
    const before = backend.allocator.allocatedBytes;
    const a = new Float32Array(64 * 32).fill(0.5);
    for (let i = 0; i < 5; i++) backend.matmul(a, a, 64, 32, 64, { transposeB: true });
    const q = new Float32Array(2 * 16 * 8).fill(0.1);
    const kv = new Float32Array(16 * 8).fill(0.2);
    for (let i = 0; i < 5; i++)
      backend.attention({ q, heads: 2, seq: 16, headDim: 8, keys: kv, values: kv, keyLength: 16 });
    // The io region may grow once; no operand stays resident.
    expect(backend.allocator.allocatedBytes - before).toBeLessThanOrEqual(1 << 20);
    const after = backend.allocator.allocatedBytes;
    for (let i = 0; i < 5; i++) backend.matmul(a, a, 64, 32, 64, { transposeB: true });
    expect(backend.allocator.allocatedBytes).toBe(after);
  });
});
