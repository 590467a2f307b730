// One conformance suite for every implementation of the backend contract (sparse-formats'
// `Backend` / `AsyncBackend`): each op against a plain float64 reference written here. Matrices are
// built as plain objects, so this file needs no import of the packages it tests.
import { describe, expect, it } from 'vitest';
import { allclose } from './allclose.js';

type Matrix = {
  format: string;
  rows: number;
  cols: number;
  dtype: 'f32' | 'f16';
  values: Float32Array | Uint16Array;
} & Record<string, unknown>;
type Maybe<T> = T | Promise<T>;
type Mask =
  | { kind: 'full' }
  | { kind: 'causal'; window?: number; sinks?: number }
  | { kind: 'blocks'; blockSize: number; kvBlocks: Int32Array[]; causal?: boolean }
  | { kind: 'positions'; positions: Int32Array };

/** The contract as seen structurally (sparse-formats' `AnyBackend`). */
export interface ConformanceBackend {
  readonly name: string;
  readonly flavour: 'sync' | 'async';
  linear(
    x: Float32Array,
    batch: number,
    w: never,
    options?: { bias?: Float32Array; out?: Float32Array },
  ): Maybe<Float32Array>;
  spmm(a: never, b: Float32Array, n: number): Maybe<Float32Array>;
  sddmm(pattern: never, a: Float32Array, b: Float32Array, k: number): Maybe<{ values: ArrayLike<number> }>;
  matmul(
    a: Float32Array,
    b: Float32Array,
    m: number,
    k: number,
    n: number,
    options?: { transposeB?: boolean },
  ): Maybe<Float32Array>;
  attention(args: {
    q: Float32Array;
    heads: number;
    seq: number;
    headDim: number;
    keys: Float32Array;
    values: Float32Array;
    keyLength: number;
    queryOffset?: number;
    mask?: never;
  }): Maybe<Float32Array>;
  gatherGemv(args: {
    w: never;
    x: Float32Array;
    active: Int32Array;
    bias?: Float32Array;
    out?: Float32Array;
  }): Maybe<Float32Array>;
}

/** Deterministic values in [-1, 1) (a small LCG; the suite needs no RNG package). */
function values(length: number, seed: number): Float32Array {
  const out = new Float32Array(length);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 2 ** 31 - 1;
  }
  return out;
}

function denseMatrix(rows: number, cols: number, v: Float32Array): Matrix {
  return { format: 'dense', rows, cols, dtype: 'f32', values: v };
}

/** Values in [-1, 1) on a 1/256 grid: exactly representable in f16 (and not 0, for `f16Bits`). */
function f16Grid(length: number, seed: number): Float32Array {
  return values(length, seed).map((v) => (Math.round(v * 256) || 1) / 256);
}

/** The f16 bit pattern of a value on the `f16Grid` (a normal f16 number, so no rounding is needed). */
function f16Bits(v: number): number {
  const a = Math.abs(v);
  const e = Math.floor(Math.log2(a));
  return ((v < 0 ? 1 : 0) << 15) | ((e + 15) << 10) | ((a / 2 ** e - 1) * 1024);
}

/** A dense f16 matrix (values as bit patterns) holding exactly the grid values `v`. */
function denseF16(rows: number, cols: number, v: Float32Array): Matrix {
  return { format: 'dense', rows, cols, dtype: 'f16', values: Uint16Array.from(v, f16Bits) };
}

/** CSR of a dense row-major array, keeping nonzeros. */
function csrMatrix(rows: number, cols: number, v: Float32Array): Matrix {
  const indptr = new Int32Array(rows + 1);
  const indices: number[] = [];
  const kept: number[] = [];
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      if (v[r * cols + c] !== 0) {
        indices.push(c);
        kept.push(v[r * cols + c]!);
      }
    }
    indptr[r + 1] = indices.length;
  }
  return {
    format: 'csr',
    rows,
    cols,
    dtype: 'f32',
    values: Float32Array.from(kept),
    indptr,
    indices: Int32Array.from(indices),
  };
}

function sparsify(v: Float32Array, every: number): Float32Array {
  return v.map((x, i) => (i % every === 0 ? x : 0));
}

function referenceLinear(x: Float32Array, batch: number, w: Float32Array, rows: number, cols: number) {
  const y = new Float64Array(batch * rows);
  for (let b = 0; b < batch; b++)
    for (let o = 0; o < rows; o++) {
      let s = 0;
      for (let i = 0; i < cols; i++) s += x[b * cols + i]! * w[o * cols + i]!;
      y[b * rows + o] = s;
    }
  return y;
}

/** Whether query position p reads key j under `mask`. */
function visible(mask: Mask, p: number, j: number): boolean {
  switch (mask.kind) {
    case 'full':
      return true;
    case 'causal':
      if (j > p) return false;
      if (mask.window === undefined) return true;
      return j > p - mask.window || j < (mask.sinks ?? 0);
    case 'blocks':
      return (
        mask.kvBlocks[Math.floor(p / mask.blockSize)]!.includes(Math.floor(j / mask.blockSize)) &&
        (mask.causal !== true || j <= p)
      );
    case 'positions':
      return mask.positions.includes(j);
  }
}

/**
 * Attention in float64 with a visibility rule per (query position, key) pair: q [heads, seq, dim],
 * keys and values [keyLength, dim], queries at the last seq positions; a query that sees no key
 * gets zeros. The plain reference for masks of any kind (contract masks, mask mods).
 */
export function pairwiseAttention(
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
  heads: number,
  seq: number,
  dim: number,
  keyLength: number,
  sees: (position: number, key: number) => boolean,
): Float64Array {
  const out = new Float64Array(heads * seq * dim);
  const offset = keyLength - seq;
  for (let h = 0; h < heads; h++)
    for (let s = 0; s < seq; s++) {
      const scores: number[] = [];
      for (let j = 0; j < keyLength; j++) {
        if (!sees(offset + s, j)) continue;
        let dot = 0;
        for (let d = 0; d < dim; d++) dot += q[(h * seq + s) * dim + d]! * k[j * dim + d]!;
        scores.push(dot / Math.sqrt(dim), j);
      }
      if (scores.length === 0) continue;
      let max = Number.NEGATIVE_INFINITY;
      for (let i = 0; i < scores.length; i += 2) max = Math.max(max, scores[i]!);
      let sum = 0;
      for (let i = 0; i < scores.length; i += 2) sum += Math.exp(scores[i]! - max);
      for (let i = 0; i < scores.length; i += 2) {
        const w = Math.exp(scores[i]! - max) / sum;
        const j = scores[i + 1]!;
        for (let d = 0; d < dim; d++) out[(h * seq + s) * dim + d]! += w * v[j * dim + d]!;
      }
    }
  return out;
}

function close(actual: Float32Array, expected: ArrayLike<number>, tolerance = 1e-5): void {
  const report = allclose(actual, expected, { atol: tolerance, rtol: tolerance });
  expect(report.pass, report.message).toBe(true);
}

/**
 * Register the suite for one backend. `get` returns the backend (created in the caller's
 * beforeAll); `skip` skips the suite (no adapter, say) with the given reason shown in its title.
 */
export function backendConformance(
  title: string,
  get: () => ConformanceBackend,
  options: {
    skip?: string | false;
    tolerance?: number;
    /** Ops the backend declares unimplemented: each must throw (or reject with) an UnsupportedOpError. */
    unsupported?: readonly string[];
  } = {},
): void {
  const lacks = new Set(options.unsupported ?? []);
  /** Run `body`, or for a declared-unsupported op check the typed error instead. */
  const op = (name: string, body: (b: ConformanceBackend) => Promise<void>) => async () => {
    const b = get();
    if (!lacks.has(name)) return body(b);
    await expect(async () => body(b)).rejects.toMatchObject({
      code: 'core/unsupported-op',
      op: name,
      backend: b.name,
    });
  };
  const suite = options.skip ? describe.skip : describe;
  const tol = options.tolerance ?? 1e-5;
  suite(`backend contract: ${title}${options.skip ? ` (skipped: ${options.skip})` : ''}`, () => {
    it('declares its name and flavour', () => {
      const b = get();
      expect(typeof b.name).toBe('string');
      expect(['sync', 'async']).toContain(b.flavour);
    });

    it('linear on dense and csr weights honours the bias', async () => {
      const b = get();
      const [rows, cols, batch] = [7, 12, 3];
      const w = sparsify(values(rows * cols, 1), 3);
      const x = values(batch * cols, 2);
      const bias = values(rows, 3);
      const expected = referenceLinear(x, batch, w, rows, cols).map((y, i) => y + bias[i % rows]!);
      for (const m of [denseMatrix(rows, cols, w), csrMatrix(rows, cols, w)]) {
        close(await b.linear(x, batch, m as never, { bias }), expected, tol);
        // An `out` array is filled (whatever it held) and returned.
        const out = new Float32Array(batch * rows).fill(Number.NaN);
        const y = await b.linear(x, batch, m as never, { bias, out } as never);
        expect(y).toBe(out);
        close(out, expected, tol);
        close(await b.linear(x, batch, m as never), referenceLinear(x, batch, w, rows, cols), tol);
      }
    });

    it('linear with rows computes only those outputs (the others 0), on dense, f16 and csr weights', async () => {
      const b = get();
      const [rows, cols] = [37, 20];
      const w = sparsify(values(rows * cols, 4), 3);
      const bias = values(rows, 5);
      const selected = Int32Array.of(36, 0, 5, 6, 7, 20);
      for (const batch of [1, 2]) {
        const x = values(batch * cols, 6 + batch);
        const full = referenceLinear(x, batch, w, rows, cols);
        const expected = full.map((y, i) => (selected.includes(i % rows) ? y + bias[i % rows]! : 0));
        for (const m of [denseMatrix(rows, cols, w), csrMatrix(rows, cols, w)]) {
          const out = new Float32Array(batch * rows).fill(Number.NaN);
          close(await b.linear(x, batch, m as never, { bias, rows: selected, out } as never), expected, tol);
          close(out, expected, tol);
          close(
            await b.linear(x, batch, m as never, { rows: new Int32Array(0) } as never),
            new Float32Array(batch * rows),
            tol,
          );
        }
      }
      const g = f16Grid(rows * cols, 8);
      const x1 = values(cols, 9);
      const full16 = referenceLinear(x1, 1, g, rows, cols);
      close(
        await b.linear(x1, 1, denseF16(rows, cols, g) as never, { rows: selected } as never),
        full16.map((y, i) => (selected.includes(i) ? y : 0)),
        tol,
      );
      const m = denseMatrix(rows, cols, w);
      for (const bad of [Int32Array.of(37), Int32Array.of(-1), Int32Array.of(3, 3)])
        await expect(async () =>
          b.linear(values(cols, 1), 1, m as never, { rows: bad } as never),
        ).rejects.toMatchObject({
          code: 'core/invalid-argument',
        });
    });

    it('spmm and matmul match dense products', async () => {
      const b = get();
      const [m, k, n] = [5, 9, 4];
      const a = sparsify(values(m * k, 4), 2);
      const bMatrix = values(k * n, 5);
      const bt = new Float32Array(n * k);
      for (let i = 0; i < k; i++) for (let j = 0; j < n; j++) bt[j * k + i] = bMatrix[i * n + j]!;
      const expected = referenceLinear(a, m, bt, n, k);
      close(await b.matmul(a, bMatrix, m, k, n), expected, tol);
      close(await b.matmul(a, bt, m, k, n, { transposeB: true }), expected, tol);
      // spmm: C = A B, i.e. row r of C = sum_k A[r, k] B[k, :].
      const c = await b.spmm(csrMatrix(m, k, a) as never, bMatrix, n);
      close(c, expected, tol);
    });

    const cases: Array<[string, number, number, Mask]> = [
      ['causal prefill', 10, 10, { kind: 'causal' }],
      ['causal decode after a cache', 1, 13, { kind: 'causal' }],
      ['causal chunk after a cache', 9, 21, { kind: 'causal' }],
      ['full', 9, 9, { kind: 'full' }],
      ['sliding window with sinks', 12, 12, { kind: 'causal', window: 4, sinks: 2 }],
      [
        'key blocks',
        12,
        12,
        {
          kind: 'blocks',
          blockSize: 4,
          kvBlocks: [Int32Array.of(0), Int32Array.of(0, 1), Int32Array.of(0, 2)],
          causal: true,
        },
      ],
      ['selected positions', 1, 16, { kind: 'positions', positions: Int32Array.of(0, 3, 4, 5, 11, 15) }],
    ];
    for (const [name, seq, keyLength, mask] of cases) {
      it(`attention: ${name}`, async () => {
        const b = get();
        const [heads, dim] = [2, 8];
        const q = values(heads * seq * dim, 6);
        const keys = values(keyLength * dim, 7);
        const vals = values(keyLength * dim, 8);
        const out = await b.attention({
          q,
          heads,
          seq,
          headDim: dim,
          keys,
          values: vals,
          keyLength,
          mask: mask as never,
        });
        close(
          out,
          pairwiseAttention(q, keys, vals, heads, seq, dim, keyLength, (p, j) => visible(mask, p, j)),
          tol,
        );
      });
    }

    it(
      `gatherGemv ${lacks.has('gatherGemv') ? 'is a typed UnsupportedOpError' : 'reads only the active columns'}`,
      op('gatherGemv', async (b) => {
        const [rows, cols] = [6, 10];
        const w = values(rows * cols, 9);
        const x = values(cols, 10);
        const active = Int32Array.of(7, 1, 4);
        const masked = x.map((v, i) => (active.includes(i) ? v : 0));
        const bias = values(rows, 11);
        const expected = referenceLinear(masked, 1, w, rows, cols).map((y, i) => y + bias[i]!);
        // Inactive entries of x are garbage: a kernel that read them would be wrong.
        const noisy = x.map((v, i) => (active.includes(i) ? v : Number.NaN));
        close(
          await b.gatherGemv({ w: denseMatrix(rows, cols, w) as never, x: noisy, active, bias }),
          expected,
          tol,
        );
      }),
    );

    // Shapes that are not multiples of any workgroup or tile size, no and every input active, odd
    // output counts, an `out` array (filled whatever it held), with and without a bias.
    const gatherCases: Array<[string, number, number, (cols: number) => Int32Array, boolean]> = [
      ['one output, one input', 1, 1, () => Int32Array.of(0), true],
      ['no input active', 9, 13, () => new Int32Array(0), true],
      ['no input active, no bias', 9, 13, () => new Int32Array(0), false],
      [
        'every input active, in reverse',
        131,
        70,
        (c) => Int32Array.from({ length: c }, (_, i) => c - 1 - i),
        true,
      ],
      [
        'every third input, no bias',
        67,
        301,
        (c) => Int32Array.from({ length: Math.ceil(c / 3) }, (_, i) => 3 * i),
        false,
      ],
      [
        'a scattered few over a long input',
        258,
        1000,
        () => Int32Array.of(999, 0, 517, 64, 65, 128, 3),
        true,
      ],
    ];
    for (const [name, rows, cols, pick, withBias] of gatherCases) {
      it(
        `gatherGemv: ${name} (${rows} x ${cols})${lacks.has('gatherGemv') ? ' is a typed UnsupportedOpError' : ''}`,
        op('gatherGemv', async (b) => {
          const w = values(rows * cols, rows + cols);
          const x = values(cols, 14);
          const active = pick(cols);
          const on = new Uint8Array(cols);
          for (const i of active) on[i] = 1;
          const bias = withBias ? values(rows, 15) : undefined;
          const masked = x.map((v, i) => (on[i] === 1 ? v : 0));
          const expected = referenceLinear(masked, 1, w, rows, cols).map((y, i) => y + (bias?.[i] ?? 0));
          const noisy = x.map((v, i) => (on[i] === 1 ? v : Number.NaN));
          const m = denseMatrix(rows, cols, w) as never;
          const args = bias === undefined ? { w: m, x: noisy, active } : { w: m, x: noisy, active, bias };
          close(await b.gatherGemv(args), expected, tol);
          const out = new Float32Array(rows).fill(Number.NaN);
          const y = await b.gatherGemv({ ...args, out });
          expect(y).toBe(out);
          close(out, expected, tol);
        }),
      );
    }

    it(
      `gatherGemv on f16 weights${lacks.has('gatherGemv') ? ' is a typed UnsupportedOpError' : ' matches the product of their f16 values'}`,
      op('gatherGemv', async (b) => {
        const [rows, cols] = [35, 50];
        const w = f16Grid(rows * cols, 16);
        const x = values(cols, 17);
        const active = Int32Array.from({ length: 20 }, (_, i) => (7 * i + 3) % cols);
        const masked = x.map((v, i) => (active.includes(i) ? v : 0));
        const bias = values(rows, 18);
        const expected = referenceLinear(masked, 1, w, rows, cols).map((y, i) => y + bias[i]!);
        const got = await b.gatherGemv({ w: denseF16(rows, cols, w) as never, x, active, bias });
        close(got, expected, tol);
      }),
    );

    if (!lacks.has('gatherGemv')) {
      it('gatherGemv refuses bad calls with typed errors', async () => {
        const b = get();
        const [rows, cols] = [4, 6];
        const w = denseMatrix(rows, cols, values(rows * cols, 19)) as never;
        const x = values(cols, 20);
        const active = Int32Array.of(1, 4);
        const refuse = (args: object, code: string) =>
          expect(async () => b.gatherGemv(args as never)).rejects.toMatchObject({ code });
        await refuse({ w, x: new Float32Array(cols + 1), active }, 'core/shape-mismatch');
        await refuse({ w, x, active, bias: new Float32Array(rows - 1) }, 'core/shape-mismatch');
        await refuse({ w, x, active, out: new Float32Array(rows + 1) }, 'core/shape-mismatch');
        await refuse({ w, x, active: Int32Array.of(1, 1) }, 'core/invalid-argument');
        await refuse({ w, x, active: Int32Array.of(cols) }, 'core/invalid-argument');
        await refuse({ w, x, active: Int32Array.of(-1) }, 'core/invalid-argument');
        const sparse = csrMatrix(rows, cols, sparsify(values(rows * cols, 21), 2));
        await refuse({ w: sparse, x, active }, 'core/invalid-argument');
      });
    }

    it(
      `sddmm ${lacks.has('sddmm') ? 'is a typed UnsupportedOpError' : 'matches dense products at the pattern'}`,
      op('sddmm', async (b) => {
        const pattern = csrMatrix(3, 4, Float32Array.of(1, 0, 0, 1, 0, 1, 0, 0, 1, 1, 0, 0));
        const a = values(3 * 2, 12);
        const bm = values(2 * 4, 13);
        const out = await b.sddmm(pattern as never, a, bm, 2);
        const expected: number[] = [];
        for (const [r, c] of [
          [0, 0],
          [0, 3],
          [1, 1],
          [2, 0],
          [2, 1],
        ] as const)
          expected.push(a[r * 2]! * bm[c]! + a[r * 2 + 1]! * bm[4 + c]!);
        close(Float32Array.from(out.values), expected, tol);
      }),
    );

    it('refuses mismatched shapes with a typed error', async () => {
      const b = get();
      await expect(async () =>
        b.linear(new Float32Array(5), 1, denseMatrix(2, 4, values(8, 1)) as never),
      ).rejects.toMatchObject({
        code: 'core/shape-mismatch',
      });
    });
  });
}
