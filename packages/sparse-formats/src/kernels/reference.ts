import { InvalidArgumentError, ShapeMismatchError } from '@sparsekit/core';
import { checkRows, keepRows } from '../backend/products.js';
import { toCsr } from '../convert.js';
import { forEachNonzero } from '../entries.js';
import { readNmPosition } from '../formats/nm.js';
import type { CsrMatrix, DenseMatrix, NmMatrix, SparseMatrix } from '../types.js';
import { encodeValues, valuesF32 } from '../values.js';

/**
 * Reference kernels in plain TypeScript: obviously correct, format-agnostic (they walk each format's
 * own storage through forEachNonzero), f32 accumulation. They are the yardstick for the fast kernels.
 * Dense operands are row-major Float32Arrays.
 */

function checkLength(what: string, array: ArrayLike<number>, expected: number, shape: number[]): void {
  if (array.length !== expected) throw new ShapeMismatchError(shape, [array.length], what);
}

function output(out: Float32Array | undefined, length: number): Float32Array {
  if (out === undefined) return new Float32Array(length);
  checkLength('out', out, length, [length]);
  out.fill(0);
  return out;
}

/** y = A x, A [rows, cols] sparse, x [cols]: the linear kernel with batch 1. */
export function spmv(a: SparseMatrix, x: Float32Array, out?: Float32Array): Float32Array {
  return linear(x, 1, a, out === undefined ? {} : { out });
}

/** C = A B, A [rows, cols] sparse, B [cols, n] dense; C [rows, n]. */
export function spmm(a: SparseMatrix, b: Float32Array, n: number, out?: Float32Array): Float32Array {
  checkWidth('n', n);
  checkLength('B', b, a.cols * n, [a.cols, n]);
  const c = output(out, a.rows * n);
  forEachNonzero(a, (r, k, v) => {
    const cBase = r * n;
    const bBase = k * n;
    for (let j = 0; j < n; j++) c[cBase + j]! += v * b[bBase + j]!;
  });
  return c;
}

/**
 * A linear layer with a sparse weight: y = x W^T (+ bias), x [batch, in] dense, W [out, in] in any
 * format; y [batch, out]. Dense weights run a plain dense loop (every multiply, no zero test), CSR and
 * N:M run loops over their own arrays, the other formats walk their nonzeros.
 */
export function linear(
  x: Float32Array,
  batch: number,
  w: SparseMatrix,
  options: { bias?: Float32Array; out?: Float32Array; rows?: Int32Array } = {},
): Float32Array {
  if (options.rows !== undefined) {
    checkRows(options.rows, w.rows);
    if (w.format === 'dense') {
      checkWidth('batch', batch);
      checkLength('x', x, batch * w.cols, [batch, w.cols]);
      const y = output(options.out, batch * w.rows);
      denseRowsInto(y, x, batch, w, options.rows, options.bias);
      return y;
    }
    const { rows, ...rest } = options;
    return keepRows(linear(x, batch, w, rest), batch, w.rows, rows);
  }
  if (w.format === 'nm') return nmLinear(x, batch, w, options);
  checkWidth('batch', batch);
  checkLength('x', x, batch * w.cols, [batch, w.cols]);
  const y = output(options.out, batch * w.rows);
  if (w.format === 'dense') denseLinearInto(y, x, batch, w);
  else if (w.format === 'csr') csrLinearInto(y, x, batch, w);
  else {
    forEachNonzero(w, (o, i, v) => {
      for (let b = 0; b < batch; b++) y[b * w.rows + o]! += v * x[b * w.cols + i]!;
    });
  }
  addBias(y, batch, w.rows, options.bias);
  return y;
}

function denseLinearInto(y: Float32Array, x: Float32Array, batch: number, w: DenseMatrix): void {
  const values = valuesF32(w.values, w.dtype);
  const { rows, cols } = w;
  for (let o = 0; o < rows; o++) {
    const wBase = o * cols;
    for (let b = 0; b < batch; b++) {
      const xBase = b * cols;
      let sum = 0;
      for (let i = 0; i < cols; i++) sum += values[wBase + i]! * x[xBase + i]!;
      y[b * rows + o] = sum;
    }
  }
}

function denseRowsInto(
  y: Float32Array,
  x: Float32Array,
  batch: number,
  w: DenseMatrix,
  list: Int32Array,
  bias: Float32Array | undefined,
): void {
  const values = valuesF32(w.values, w.dtype);
  const { rows, cols } = w;
  if (bias !== undefined) checkLength('bias', bias, rows, [rows]);
  for (const o of list) {
    const wBase = o * cols;
    for (let b = 0; b < batch; b++) {
      const xBase = b * cols;
      let sum = 0;
      for (let i = 0; i < cols; i++) sum += values[wBase + i]! * x[xBase + i]!;
      y[b * rows + o] = sum + (bias === undefined ? 0 : bias[o]!);
    }
  }
}

function csrLinearInto(y: Float32Array, x: Float32Array, batch: number, w: CsrMatrix): void {
  const values = valuesF32(w.values, w.dtype);
  const { indptr, indices, rows, cols } = w;
  for (let o = 0; o < rows; o++) {
    for (let b = 0; b < batch; b++) {
      const xBase = b * cols;
      let sum = 0;
      for (let k = indptr[o]!; k < indptr[o + 1]!; k++) sum += values[k]! * x[xBase + indices[k]!]!;
      y[b * rows + o] = sum;
    }
  }
}

/**
 * N:M linear walking the group structure directly: y = x W^T (+ bias) with W in N:M. Each output
 * reads n of every m inputs: the work the format saves.
 */
export function nmLinear(
  x: Float32Array,
  batch: number,
  w: NmMatrix,
  options: { bias?: Float32Array; out?: Float32Array } = {},
): Float32Array {
  checkWidth('batch', batch);
  checkLength('x', x, batch * w.cols, [batch, w.cols]);
  const y = output(options.out, batch * w.rows);
  const values = valuesF32(w.values, w.dtype);
  const groups = w.cols / w.m;
  for (let o = 0; o < w.rows; o++) {
    for (let g = 0; g < groups; g++) {
      const base = (o * groups + g) * w.n;
      for (let s = 0; s < w.n; s++) {
        const v = values[base + s]!;
        if (v === 0) continue;
        const i = g * w.m + readNmPosition(w.indices, base + s, w.indexBits);
        for (let b = 0; b < batch; b++) y[b * w.rows + o]! += v * x[b * w.cols + i]!;
      }
    }
  }
  addBias(y, batch, w.rows, options.bias);
  return y;
}

/**
 * Sampled dense-dense matmul (SDDMM): alpha * (A B) at the nonzero positions of `pattern`, plus beta
 * times the pattern's values (cuSPARSE / torch.sparse.sampled_addmm semantics). A [rows, k], B [k, cols];
 * the result is CSR with the pattern's nonzero structure.
 */
export function sddmm(
  pattern: SparseMatrix,
  a: Float32Array,
  b: Float32Array,
  k: number,
  options: { alpha?: number; beta?: number } = {},
): CsrMatrix {
  const { alpha = 1, beta = 0 } = options;
  checkWidth('k', k);
  checkLength('A', a, pattern.rows * k, [pattern.rows, k]);
  checkLength('B', b, k * pattern.cols, [k, pattern.cols]);
  const s = toCsr(pattern);
  const sv = valuesF32(s.values, s.dtype);
  const out = new Float32Array(sv.length);
  for (let r = 0; r < s.rows; r++) {
    for (let e = s.indptr[r]!; e < s.indptr[r + 1]!; e++) {
      const c = s.indices[e]!;
      let dot = 0;
      for (let p = 0; p < k; p++) dot += a[r * k + p]! * b[p * s.cols + c]!;
      out[e] = alpha * dot + beta * sv[e]!;
    }
  }
  return { ...s, values: encodeValues(out, s.dtype) };
}

function addBias(y: Float32Array, batch: number, width: number, bias: Float32Array | undefined): void {
  if (bias === undefined) return;
  checkLength('bias', bias, width, [width]);
  for (let b = 0; b < batch; b++) for (let o = 0; o < width; o++) y[b * width + o]! += bias[o]!;
}

function checkWidth(name: string, value: number): void {
  if (!Number.isInteger(value) || value < 0)
    throw new InvalidArgumentError(name, value, 'must be a non-negative integer');
}
