import { execFileSync } from 'node:child_process';
import { InvalidFormatError, Rng, ShapeMismatchError, Tensor } from '@sparsekit/core';
import {
  type CsrMatrix,
  type DenseMatrix,
  type FormatName,
  fromDense,
  linear,
  referenceBackend,
  type SparseMatrix,
} from '@sparsekit/sparse-formats';
import { backendConformance } from '@sparsekit/test-utils';
import { describe, expect, it } from 'vitest';
import type { NativeKernelSet } from './load.js';
import { nativeAvailability, nativeKernels } from './load.js';
import { createNativeBackend, type NativeBackend } from './native-backend.js';

const availability = nativeAvailability();
const skip = availability.available ? false : `native addon not built: ${availability.reason}`;
const backends = new Map<string, NativeBackend>();
/** One backend per (kernels, threads), kept: each selects its own pool size and kernels when used. */
const backend = (kernels: NativeKernelSet, threads: number) => {
  const key = `${kernels}/${threads}`;
  const b = backends.get(key) ?? createNativeBackend({ kernels, threads });
  backends.set(key, b);
  return b;
};

backendConformance('native', () => backend('avx512', 2), { skip });
/** Whether this CPU runs the AVX-512 kernels (else 'avx512' runs the AVX2 ones, and says so). */
const avx512 = availability.available && createNativeBackend({ threads: 1 }).kernels === 'avx512';

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
  ['nm 1:8 f32', 'nm', { n: 1, m: 8 }],
  ['bitmask f32 (runs as csr)', 'bitmask', {}],
  ['bsr 2x4 f16 (as csr at batch 1)', 'bsr', { blockShape: [2, 4], dtype: 'f16' }],
];

/** A dense [rows, cols] matrix at `density`, every m-group pruned to at most n when given. */
function weights(rows: number, cols: number, density: number, rng: Rng, nm?: [number, number]): Float32Array {
  const v = new Float32Array(rows * cols);
  for (let i = 0; i < v.length; i++) if (rng.uniform() < density) v[i] = rng.normal();
  if (nm !== undefined)
    for (let g = 0; g < v.length; g += nm[1]) {
      const order = [0, 1, 2, 3, 4, 5, 6, 7]
        .slice(0, nm[1])
        .sort((a, b) => Math.abs(v[g + b]!) - Math.abs(v[g + a]!));
      for (const k of order.slice(nm[0])) v[g + k] = 0;
    }
  return v;
}

describe.skipIf(skip !== false)('native kernels against the reference kernels', () => {
  describe.each([
    ['avx512', 2],
    ['avx2', 1],
    ['avx2', 3],
    ['portable', 2],
  ] as const)('%s kernels, %i thread(s)', (kernels, threads) => {
    it.each(VARIANTS)(
      '%s linear (batch 1..33, odd shapes, empty rows, with and without bias)',
      (_, format, options) => {
        const b = backend(kernels, threads);
        const rng = new Rng(format.length * 31 + threads);
        const o = options as { n?: number; m?: number };
        const nm: [number, number] | undefined = o.n === undefined ? undefined : [o.n, o.m!];
        // 20 inputs: 2:4 with a width that is not a multiple of 8 (its permute kernel does not apply).
        const shapes: [number, number][] = [
          [8, 8],
          [14, 24],
          [64, 200],
          [300, 136],
        ];
        if (nm === undefined || 20 % nm[1] === 0) shapes.push([10, 20]);
        for (const [rows, cols] of shapes) {
          const values = weights(rows, cols, 0.4, rng, nm);
          for (let c = 0; c < cols; c++) values[2 * cols + c] = 0; // an empty row
          const w: SparseMatrix = fromDense(new Tensor('f32', [rows, cols], values), format, options);
          for (const batch of [1, 2, 5, 8, 17, 33]) {
            const x = rng.normalArray(batch * cols);
            const bias = batch % 2 === 0 ? rng.normalArray(rows) : undefined;
            const o = bias === undefined ? {} : { bias };
            expect(b.linear(x, batch, w, o)).toAllClose(linear(x, batch, w, o), { atol: 1e-4, rtol: 1e-4 });
          }
        }
      },
    );
  });

  it.each([
    ['1x8 f32', [1, 8], {}],
    ['2x8 u16 f16', [2, 8], { indexType: 'u16', dtype: 'f16' }],
    ['4x16 f32', [4, 16], {}],
    ['8x1 f32', [8, 1], {}],
    ['16x1 u16 f16', [16, 1], { indexType: 'u16', dtype: 'f16' }],
    ['4x1 f32', [4, 1], {}],
    ['1x4 u16 f16', [1, 4], { indexType: 'u16', dtype: 'f16' }],
    ['2x2 f32', [2, 2], {}],
    ['2x1 f32', [2, 1], {}],
    ['1x2 u16 f16', [1, 2], { indexType: 'u16', dtype: 'f16' }],
    ['2x4 f32 (as csr at batch 1)', [2, 4], {}],
    ['4x2 u16 f16 (as csr at batch 1)', [4, 2], { indexType: 'u16', dtype: 'f16' }],
    ['4x4 f32 (as csr at batch 1)', [4, 4], {}],
    ['8x2 f32 (runs as csr)', [8, 2], {}],
  ] as const)(
    'BSR %s runs its block kernel (or CSR where the shape does not fit it) to the reference result',
    (_, shape, options) => {
      const rng = new Rng(21);
      for (const [rows, cols] of [
        [16, 16],
        [64, 256],
        [512, 384],
      ] as const) {
        // Whole blocks kept or dropped, as block pruning leaves them; one block row empty.
        const values = rng.normalArray(rows * cols);
        const [R, C] = shape;
        for (let br = 0; br < rows / R; br++)
          for (let bc = 0; bc < cols / C; bc++)
            if (br === 1 || rng.uniform() < 0.7)
              for (let r = 0; r < R; r++)
                for (let c = 0; c < C; c++) values[(br * R + r) * cols + bc * C + c] = 0;
        const w = fromDense(new Tensor('f32', [rows, cols], values), 'bsr', {
          blockShape: shape,
          ...options,
        });
        for (const kernels of ['avx512', 'avx2', 'portable'] as const)
          for (const batch of [1, 3, 4, 9, 17]) {
            const x = rng.normalArray(batch * cols);
            const bias = rng.normalArray(rows);
            expect(backend(kernels, 2).linear(x, batch, w, { bias })).toAllClose(
              linear(x, batch, w, { bias }),
              {
                atol: 1e-4,
                rtol: 1e-4,
              },
            );
          }
      }
    },
  );

  it.each(['avx512', 'avx2', 'portable'] as const)(
    '%s wide batches read x^T in several column panels and row blocks to the reference result',
    (kernels) => {
      // Batch 130 pads to 144 per x^T row, so a panel is 448 columns: 1000 columns make three, and
      // 70 rows three row blocks; u16 and i32 indices, f32 and f16 values, an empty row.
      const rng = new Rng(41);
      const values = weights(70, 1000, 0.3, rng);
      for (let c = 0; c < 1000; c++) values[33 * 1000 + c] = 0;
      for (const options of [{}, { indexType: 'u16', dtype: 'f16' }] as const) {
        const w = fromDense(new Tensor('f32', [70, 1000], values), 'csr', options);
        for (const batch of [24, 130]) {
          const x = rng.normalArray(batch * 1000);
          const bias = rng.normalArray(70);
          expect(backend(kernels, 2).linear(x, batch, w, { bias })).toAllClose(
            linear(x, batch, w, { bias }),
            {
              atol: 2e-4,
              rtol: 1e-4,
            },
          );
        }
      }
    },
  );

  it('splits large calls over the pool to the same result as one thread, and honours `rows` and `out`', () => {
    const rng = new Rng(9);
    const values = weights(1024, 512, 0.3, rng);
    const w = fromDense(new Tensor('f32', [1024, 512], values), 'csr');
    const x = rng.normalArray(4 * 512);
    const one = backend('avx2', 1).linear(x, 4, w);
    const four = backend('avx2', 4).linear(x, 4, w);
    expect(four).toAllClose(one, { atol: 1e-5, rtol: 1e-5 });
    const out = new Float32Array(4 * 1024).fill(7);
    const rows = Int32Array.of(3, 100, 1023);
    backend('avx2', 2).linear(x, 4, w, { out, rows });
    for (let b = 0; b < 4; b++)
      for (let r = 0; r < 1024; r++) {
        const want = rows.includes(r) ? one[b * 1024 + r]! : 0;
        expect(out[b * 1024 + r]).toBeCloseTo(want, 4);
      }
  });

  it('checks a weight once before its loops trust it: out-of-range indices are a typed error, not a crash', () => {
    const b = backend('avx2', 2);
    // (Built by hand: csr() itself would refuse it.)
    const bad: CsrMatrix = {
      format: 'csr',
      dtype: 'f32',
      rows: 2,
      cols: 4,
      indptr: Int32Array.of(0, 1, 2),
      indices: Int32Array.of(1, 1_000_000),
      values: Float32Array.of(1, 2),
    };
    expect(() => b.linear(new Float32Array(4), 1, bad)).toThrow(InvalidFormatError);
    expect(() =>
      b.linear(new Float32Array(3), 1, fromDense(new Tensor('f32', [2, 4], new Float32Array(8)), 'csr')),
    ).toThrow(ShapeMismatchError);
  });

  it.each(['avx512', 'avx2', 'portable'] as const)(
    '%s gather GEMV reads only the active columns, as the reference (threads split the outputs)',
    (kernels) => {
      const rng = new Rng(11);
      for (const [rows, cols] of [
        [5, 7],
        [300, 96],
        [2048, 512],
      ] as const) {
        const w = fromDense(
          new Tensor('f32', [rows, cols], rng.normalArray(rows * cols)),
          'dense',
        ) as DenseMatrix;
        const x = rng.normalArray(cols);
        for (const share of [0, 0.1, 0.5, 1]) {
          const active = Int32Array.from(rng.sample(cols, Math.round(cols * share)));
          const bias = rng.normalArray(rows);
          const want = referenceBackend.gatherGemv({ w, x, active, bias });
          expect(backend(kernels, 3).gatherGemv({ w, x, active, bias })).toAllClose(want, {
            atol: 1e-4,
            rtol: 1e-4,
          });
          // x outside `active` is never read.
          const poisoned = Float32Array.from(x);
          const set = new Set(active);
          for (let i = 0; i < cols; i++) if (!set.has(i)) poisoned[i] = Number.NaN;
          expect(backend(kernels, 2).gatherGemv({ w, x: poisoned, active, bias })).toAllClose(want, {
            atol: 1e-4,
            rtol: 1e-4,
          });
        }
      }
      const w = fromDense(new Tensor('f32', [2, 3], new Float32Array(6)), 'dense') as DenseMatrix;
      expect(() =>
        backend(kernels, 1).gatherGemv({ w, x: new Float32Array(3), active: Int32Array.of(3) }),
      ).toThrow(/active/);
    },
  );

  it('reports its features and kernels: the best the CPU runs at or below the ones asked for', () => {
    const features = createNativeBackend({ threads: 1 });
    expect(['avx512', 'avx2', 'portable']).toContain(features.kernels);
    expect(backend('avx512', 2).kernels).toBe(avx512 ? 'avx512' : backend('avx2', 2).kernels);
    expect(['avx2', 'portable']).toContain(backend('avx2', 2).kernels);
    expect(backend('portable', 2).kernels).toBe('portable');
    expect(() => createNativeBackend({ kernels: 'sse' as NativeKernelSet })).toThrow(/kernels/);
    // Two backends in one process: each call runs on its own backend's kernels and pool.
    const portable = createNativeBackend({ kernels: 'portable', threads: 1 });
    const best = createNativeBackend({ threads: 3 });
    const w = fromDense(new Tensor('f32', [4, 8], new Float32Array(32).fill(1)), 'csr');
    portable.linear(new Float32Array(8), 1, w);
    expect(nativeKernels().features()).toMatchObject({ kernels: 'portable', threads: 1 });
    best.linear(new Float32Array(8), 1, w);
    expect(nativeKernels().features()).toMatchObject({ kernels: best.kernels, threads: 3 });
  });
});

describe.skipIf(skip !== false)('a system BLAS for wide dense batches', () => {
  it('gives the reference result with and without it (and says which runs)', () => {
    const rng = new Rng(9);
    const w = fromDense(new Tensor('f32', [70, 96], rng.normalArray(70 * 96)), 'dense');
    const off = createNativeBackend({ threads: 2, blas: false });
    expect(off.blas).toBeNull();
    for (const blas of [true, false]) {
      const b = createNativeBackend({ threads: 2, blas });
      if (blas) expect(b.blas === null || ['openblas', 'blis'].includes(b.blas)).toBe(true);
      for (const batch of [1, 15, 16, 33, 128]) {
        const x = rng.normalArray(batch * 96);
        const bias = rng.normalArray(70);
        expect(b.linear(x, batch, w, { bias }), `blas ${blas}, batch ${batch}`).toAllClose(
          linear(x, batch, w, { bias }),
          {
            atol: 1e-4,
            rtol: 1e-4,
          },
        );
      }
    }
  });
});

describe('without the addon', () => {
  it('SPARSEKIT_NATIVE=0 hides it (as on a machine without a build): a typed error with the reason, and availability says why', () => {
    const script = `
      import { createNativeBackend, nativeAvailability } from './dist/index.js';
      const a = nativeAvailability();
      let code = '';
      try { createNativeBackend(); } catch (e) { code = e.code; }
      console.log(JSON.stringify({ a, code }));`;
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], {
      env: { ...process.env, SPARSEKIT_NATIVE: '0' },
      encoding: 'utf8',
    });
    expect(JSON.parse(out.trim().split('\n').at(-1)!)).toEqual({
      a: { available: false, reason: 'hidden by SPARSEKIT_NATIVE=0' },
      code: 'kernels-native/unavailable',
    });
  });
});
