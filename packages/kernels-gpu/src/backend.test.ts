import { InvalidArgumentError, Rng, Tensor } from '@sparsekit/core';
import {
  type AttentionMask,
  attention as cpuAttention,
  fromDense,
  linear as referenceLinear,
  type SparseMatrix,
} from '@sparsekit/sparse-formats';
import { afterAll, describe, expect, it } from 'vitest';
import { blockSparseAttention, blockSparseAttentionReference } from './attention.js';
import { GpuBackend } from './backend.js';
import { NoGpuAdapterError } from './gpu.js';

// Correctness against the CPU reference kernels on whatever adapter exists (CI: Mesa lavapipe).
const backend = await GpuBackend.create().catch((error: unknown) => {
  if (!(error instanceof NoGpuAdapterError)) throw error;
  console.warn(`SKIPPED: WebGPU kernel tests need an adapter (${error.message})`);
  return undefined;
});
afterAll(() => backend?.dispose());

const rng = new Rng(42);
const ROWS = 37;
const COLS = 72;

function sparseWeight(keepEvery: (r: number, c: number) => boolean): Tensor<'f32'> {
  const w = rng.normalArray(ROWS * COLS, 0, 0.5);
  for (let r = 0; r < ROWS; r++) for (let c = 0; c < COLS; c++) if (!keepEvery(r, c)) w[r * COLS + c] = 0;
  return new Tensor('f32', [ROWS, COLS], w);
}

/** Keep the n largest of every m consecutive weights in a row. */
function nmWeight(n: number, m: number): Tensor<'f32'> {
  const w = rng.normalArray(ROWS * COLS, 0, 0.5);
  for (let g = 0; g < w.length; g += m) {
    const order = Array.from({ length: m }, (_, i) => i).sort(
      (a, b) => Math.abs(w[g + b]!) - Math.abs(w[g + a]!),
    );
    for (const i of order.slice(n)) w[g + i] = 0;
  }
  return new Tensor('f32', [ROWS, COLS], w);
}

/** Whole R x C blocks kept with probability 0.4; the second block row empty where there is one. */
function blockWeight(R: number, C: number): Tensor<'f32'> {
  const w = rng.normalArray(ROWS * COLS, 0, 0.5);
  for (let br = 0; br < ROWS / R; br++)
    for (let bc = 0; bc < COLS / C; bc++)
      if (br === 1 || rng.uniform() >= 0.4)
        for (let r = 0; r < R; r++) w.fill(0, (br * R + r) * COLS + bc * C, (br * R + r) * COLS + bc * C + C);
  return new Tensor('f32', [ROWS, COLS], w);
}

const unstructured = () => sparseWeight(() => rng.uniform() < 0.3);
const cases: Array<[string, () => SparseMatrix]> = [
  ['dense f32', () => fromDense(unstructured(), 'dense')],
  ['dense f16', () => fromDense(unstructured(), 'dense', { dtype: 'f16' })],
  ['csr f32 (u16 indices)', () => fromDense(unstructured(), 'csr', { indexType: 'u16' })],
  ['csr f16 (i32 indices)', () => fromDense(unstructured(), 'csr', { dtype: 'f16' })],
  [
    'csr with empty rows',
    () =>
      fromDense(
        sparseWeight((r) => r % 3 === 0),
        'csr',
      ),
  ],
  ['nm 2:4 f32', () => fromDense(nmWeight(2, 4), 'nm', { n: 2, m: 4 })],
  ['nm 2:4 f16', () => fromDense(nmWeight(2, 4), 'nm', { n: 2, m: 4, dtype: 'f16' })],
  ['nm 4:8 f32 (3-bit positions across words)', () => fromDense(nmWeight(4, 8), 'nm', { n: 4, m: 8 })],
  ['nm 1:4 f32', () => fromDense(nmWeight(1, 4), 'nm', { n: 1, m: 4 })],
  ['bitmask f32', () => fromDense(unstructured(), 'bitmask')],
  ['bitmask f16', () => fromDense(unstructured(), 'bitmask', { dtype: 'f16' })],
  // 37 x 72: blocks that divide it, whole blocks dropped, one block row empty.
  ['bsr 1x8 f32', () => fromDense(blockWeight(1, 8), 'bsr', { blockShape: [1, 8] })],
  [
    'bsr 37x1 f16 (u16 indices)',
    () => fromDense(blockWeight(37, 1), 'bsr', { blockShape: [37, 1], dtype: 'f16', indexType: 'u16' }),
  ],
  ['bsr 1x4 f16', () => fromDense(blockWeight(1, 4), 'bsr', { blockShape: [1, 4], dtype: 'f16' })],
];

describe.skipIf(backend === undefined)('GPU linear kernels vs the CPU reference', () => {
  it.each(cases)('%s: y = x W^T at batch 1, 3, 5 and 17, with and without bias (1e-5)', async (_, make) => {
    const w = make();
    const bias = rng.normalArray(ROWS);
    for (const batch of [1, 3, 5, 17]) {
      const x = rng.normalArray(batch * COLS);
      const want = referenceLinear(x, batch, w, { bias });
      expect(await backend!.linear(x, batch, w, { bias })).toAllClose(want, { atol: 1e-5, rtol: 1e-5 });
      const plain = referenceLinear(x, batch, w);
      expect(await backend!.linear(x, batch, w)).toAllClose(plain, { atol: 1e-5, rtol: 1e-5 });
    }
  });

  it('dense: the row kernel and the tiled GEMM agree at every batch', async () => {
    const w = fromDense(unstructured(), 'dense');
    for (const batch of [1, 16, 33]) {
      const x = rng.normalArray(batch * COLS);
      const want = referenceLinear(x, batch, w);
      for (const denseKernel of ['rows', 'gemm'] as const) {
        expect(await backend!.linear(x, batch, w, { denseKernel })).toAllClose(want, {
          atol: 1e-5,
          rtol: 1e-5,
        });
      }
    }
  });

  it('keeps matrices resident: prepare once, run many, release', async () => {
    const w = fromDense(unstructured(), 'csr');
    const prepared = backend!.prepare(w);
    expect(backend!.prepare(w)).toBe(prepared);
    expect(prepared.bytes).toBeGreaterThan(0);
    const x = rng.normalArray(COLS);
    const want = referenceLinear(x, 1, w);
    for (let i = 0; i < 3; i++)
      expect(await backend!.spmv(prepared, x)).toAllClose(want, { atol: 1e-5, rtol: 1e-5 });
    backend!.release(w);
    expect(backend!.prepare(w)).not.toBe(prepared);
  });

  it('rejects formats without a GPU kernel and wrong shapes', async () => {
    expect(() => backend!.prepare(fromDense(unstructured(), 'coo'))).toThrow(InvalidArgumentError);
    const w = fromDense(unstructured(), 'csr');
    await expect(backend!.linear(new Float32Array(COLS + 1), 1, w)).rejects.toThrow(/x/);
  });
});

describe.skipIf(backend === undefined)('block-sparse attention vs the dense masked reference', () => {
  const heads = 4;
  const kvHeads = 2;
  const seq = 100;
  const headDim = 24;
  const q = rng.normalArray(heads * seq * headDim);
  const k = rng.normalArray(kvHeads * seq * headDim);
  const v = rng.normalArray(kvHeads * seq * headDim);

  it('causal, every block on or below the diagonal (1e-4)', async () => {
    const options = { heads, kvHeads, seq, headDim, blockSize: 16 };
    const want = blockSparseAttentionReference(q, k, v, options);
    expect(await blockSparseAttention(backend!, q, k, v, options)).toAllClose(want, {
      atol: 1e-4,
      rtol: 1e-4,
    });
  });

  it('a sliding window plus global first block, causal and not (1e-4)', async () => {
    const blocks = Math.ceil(seq / 16);
    const blockMask = Uint8Array.from({ length: blocks * blocks }, (_, i) => {
      const [qb, kb] = [Math.floor(i / blocks), i % blocks];
      return kb === 0 || Math.abs(qb - kb) <= 1 ? 1 : 0;
    });
    for (const causal of [true, false]) {
      const options = { heads, kvHeads, seq, headDim, blockSize: 16, blockMask, causal };
      const want = blockSparseAttentionReference(q, k, v, options);
      expect(await blockSparseAttention(backend!, q, k, v, options)).toAllClose(want, {
        atol: 1e-4,
        rtol: 1e-4,
      });
    }
  });

  it('query blocks with no key block give zeros', async () => {
    const blocks = Math.ceil(seq / 32);
    const blockMask = new Uint8Array(blocks * blocks);
    blockMask[0] = 1;
    const options = { heads, kvHeads, seq, headDim, blockSize: 32, blockMask };
    const got = await blockSparseAttention(backend!, q, k, v, options);
    expect(got).toAllClose(blockSparseAttentionReference(q, k, v, options), { atol: 1e-4, rtol: 1e-4 });
    expect(got.subarray(40 * headDim, 41 * headDim).every((x) => x === 0)).toBe(true);
  });
});

describe.skipIf(backend === undefined)('attention after a cache, and decode steps on the kernel', () => {
  it('queries that follow cached keys (keyLength > seq, causal at their offset) match the reference', async () => {
    const [heads, kvHeads, seq, keyLength, headDim] = [4, 2, 20, 75, 16];
    const q = rng.normalArray(heads * seq * headDim);
    const k = rng.normalArray(kvHeads * keyLength * headDim);
    const v = rng.normalArray(kvHeads * keyLength * headDim);
    for (const causal of [true, false]) {
      const options = { heads, kvHeads, seq, headDim, keyLength, blockSize: 16, causal };
      expect(await blockSparseAttention(backend!, q, k, v, options)).toAllClose(
        blockSparseAttentionReference(q, k, v, options),
        { atol: 1e-4, rtol: 1e-4 },
      );
    }
  });

  it('a decode step reads only the rows its mask selects, as the CPU does (positions, window + sinks)', async () => {
    const [heads, dim, keyLength] = [4, 32, 300];
    const base = {
      q: rng.normalArray(heads * dim, 0, 2),
      heads,
      seq: 1,
      headDim: dim,
      keys: rng.normalArray(keyLength * dim),
      values: rng.normalArray(keyLength * dim),
      keyLength,
    };
    const masks: AttentionMask[] = [
      { kind: 'causal' },
      { kind: 'causal', window: 40, sinks: 4 },
      {
        kind: 'positions',
        positions: Int32Array.from({ length: 48 }, (_, i) => 16 * Math.floor(i / 16) * 5 + (i % 16)),
      },
    ];
    for (const mask of masks) {
      const before = backend!.stats.attentionOnKernel;
      const got = await backend!.attention({ ...base, mask });
      expect(backend!.stats.attentionOnKernel).toBe(before + 1);
      expect(got).toAllClose(cpuAttention({ ...base, mask }), { atol: 1e-4, rtol: 1e-4 });
    }
  });
});

describe('no adapter', () => {
  it('is a typed error that says what to do', async () => {
    const gpu = { requestAdapter: async () => null } as unknown as GPU;
    await expect(GpuBackend.create({ gpu })).rejects.toThrow(NoGpuAdapterError);
    await expect(GpuBackend.create({ gpu })).rejects.toThrow(/createWasmBackend/);
  });
});
