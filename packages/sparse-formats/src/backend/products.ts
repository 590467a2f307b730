// Dense products and the column-gather GEMV, written once over a linear kernel so that every backend
// shares their argument checks and their arithmetic order.
import { InvalidArgumentError, ShapeMismatchError } from '@sparsekit/core';
import { dense } from '../formats/dense.js';
import type { DenseMatrix, SparseMatrix } from '../types.js';
import { valuesF32 } from '../values.js';
import type { GatherGemvArgs, LinearOptions, MatmulOptions } from './contract.js';

type LinearFn = (x: Float32Array, batch: number, w: SparseMatrix, options?: LinearOptions) => Float32Array;

function dimension(name: string, value: number): void {
  if (!Number.isInteger(value) || value < 0)
    throw new InvalidArgumentError(name, value, 'must be a non-negative integer');
}

/** Check a matmul call; returns B as the [n, k] weight of a linear call (transposing when needed). */
export function matmulWeight(
  a: Float32Array,
  b: Float32Array,
  m: number,
  k: number,
  n: number,
  options: MatmulOptions,
): DenseMatrix {
  dimension('m', m);
  dimension('k', k);
  dimension('n', n);
  if (a.length !== m * k) throw new ShapeMismatchError([m, k], [a.length], 'A');
  if (b.length !== k * n) throw new ShapeMismatchError(options.transposeB ? [n, k] : [k, n], [b.length], 'B');
  if (options.out !== undefined && options.out.length !== m * n)
    throw new ShapeMismatchError([m, n], [options.out.length], 'out');
  if (options.transposeB === true) return dense({ rows: n, cols: k, values: b });
  const bt = new Float32Array(n * k);
  for (let i = 0; i < k; i++) for (let j = 0; j < n; j++) bt[j * k + i] = b[i * n + j]!;
  return dense({ rows: n, cols: k, values: bt });
}

/** C [m, n] = A [m, k] B [k, n] (or A B^T) as one linear call: C = A (B^T)^T. */
export function matmulOnLinear(
  linear: LinearFn,
  a: Float32Array,
  b: Float32Array,
  m: number,
  k: number,
  n: number,
  options: MatmulOptions = {},
): Float32Array {
  const w = matmulWeight(a, b, m, k, n, options);
  return linear(a, m, w, options.out === undefined ? {} : { out: options.out });
}

/** Check a gather-GEMV call (shapes, bias, indices in range and unique). */
export function checkGatherGemv(args: GatherGemvArgs): void {
  const { w, x, active } = args;
  if (w.format !== 'dense')
    throw new InvalidArgumentError('w.format', (w as SparseMatrix).format, "must be 'dense' for gatherGemv");
  if (x.length !== w.cols) throw new ShapeMismatchError([w.cols], [x.length], 'x');
  if (args.bias !== undefined && args.bias.length !== w.rows)
    throw new ShapeMismatchError([w.rows], [args.bias.length], 'bias');
  if (args.out !== undefined && args.out.length !== w.rows)
    throw new ShapeMismatchError([w.rows], [args.out.length], 'out');
  if (active.length > w.cols)
    throw new InvalidArgumentError('active', active.length, `must hold at most ${w.cols} indices`);
  checkIndices(active, w.cols, 'active index');
}

/**
 * A typed error unless `indices` are unique and in [0, count). Duplicates are found with a mark per
 * slot that holds the number of the call that last saw it, so a call costs O(indices): the marks are
 * allocated once (grown to the largest count) and never cleared, except when the call counter wraps.
 */
function checkIndices(indices: Int32Array, count: number, what: string): void {
  if (marks.length < count) marks = new Uint32Array(Math.max(count, 2 * marks.length));
  if (++stamp === 0x1_0000_0000) {
    marks.fill(0);
    stamp = 1;
  }
  for (let i = 0; i < indices.length; i++) {
    const c = indices[i]!;
    if (!(c >= 0 && c < count) || marks[c] === stamp)
      throw new InvalidArgumentError(what, c, `must be unique and in [0, ${count})`);
    marks[c] = stamp;
  }
}

let marks = new Uint32Array(0);
let stamp = 0;

/**
 * The two halves of C [rows, n] = A B (B [cols, n] dense) as C^T = B^T A^T, for backends of either
 * flavour: `spmmInput` checks the call and gives B^T (the linear call's input) and the output array;
 * `spmmOutput` writes the linear call's result (C^T) into it.
 */
export function spmmInput(
  a: SparseMatrix,
  b: Float32Array,
  n: number,
  out?: Float32Array,
): { bt: Float32Array; c: Float32Array } {
  dimension('n', n);
  if (b.length !== a.cols * n) throw new ShapeMismatchError([a.cols, n], [b.length], 'B');
  const c = out ?? new Float32Array(a.rows * n);
  if (c.length !== a.rows * n) throw new ShapeMismatchError([a.rows, n], [c.length], 'out');
  const bt = new Float32Array(n * a.cols);
  for (let k = 0; k < a.cols; k++) for (let j = 0; j < n; j++) bt[j * a.cols + k] = b[k * n + j]!;
  return { bt, c };
}

export function spmmOutput(ct: Float32Array, c: Float32Array, rows: number, n: number): Float32Array {
  for (let j = 0; j < n; j++) for (let r = 0; r < rows; r++) c[r * n + j] = ct[j * rows + r]!;
  return c;
}

/** C [rows, n] = A B for B [cols, n] dense, as C^T = B^T A^T: one linear call on A. */
export function spmmOnLinear(
  linear: LinearFn,
  a: SparseMatrix,
  b: Float32Array,
  n: number,
  out?: Float32Array,
): Float32Array {
  const { bt, c } = spmmInput(a, b, n, out);
  return spmmOutput(linear(bt, n, a), c, a.rows, n);
}

/**
 * `gatherGemv` with the transposed copy of each weight kept in `cache` (made on first use), as the
 * reference and wasm backends run it.
 */
export function cachedGatherGemv(
  cache: WeakMap<DenseMatrix, Float32Array>,
  args: GatherGemvArgs,
): Float32Array {
  checkGatherGemv(args);
  let columns = cache.get(args.w);
  if (columns === undefined) {
    columns = transposedColumns(args.w);
    cache.set(args.w, columns);
  }
  return gatherGemvColumns(args, columns);
}

/** W^T [in, out] as f32, so that one input column is one contiguous row. */
export function transposedColumns(w: DenseMatrix): Float32Array {
  const values = valuesF32(w.values, w.dtype);
  const t = new Float32Array(w.rows * w.cols);
  for (let o = 0; o < w.rows; o++)
    for (let i = 0; i < w.cols; i++) t[i * w.rows + o] = values[o * w.cols + i]!;
  return t;
}

/**
 * y = W[:, active] x[active] (+ bias) from W^T `columns` [in, out]: one contiguous row per active
 * input, so the work is proportional to the active count (inactive columns are never read).
 */
export function gatherGemvColumns(args: GatherGemvArgs, columns: Float32Array): Float32Array {
  const rows = args.w.rows;
  const y = args.out ?? new Float32Array(rows);
  if (args.bias === undefined) y.fill(0);
  else y.set(args.bias);
  const { x, active } = args;
  for (let a = 0; a < active.length; a++) {
    const i = active[a]!;
    const xi = x[i]!;
    const base = i * rows;
    for (let o = 0; o < rows; o++) y[o]! += xi * columns[base + o]!;
  }
  return y;
}

/**
 * The checks every backend's `linear` makes (batch, x, out, bias, rows), returning the output array:
 * `options.out`, or a new one.
 */
export function checkLinearArgs(
  x: Float32Array,
  batch: number,
  w: SparseMatrix,
  options: LinearOptions,
): Float32Array {
  if (!Number.isInteger(batch) || batch < 0)
    throw new InvalidArgumentError('batch', batch, 'must be a non-negative integer');
  if (x.length !== batch * w.cols) throw new ShapeMismatchError([batch, w.cols], [x.length], 'x');
  const out = options.out ?? new Float32Array(batch * w.rows);
  if (out.length !== batch * w.rows) throw new ShapeMismatchError([batch * w.rows], [out.length], 'out');
  if (options.bias !== undefined && options.bias.length !== w.rows)
    throw new ShapeMismatchError([w.rows], [options.bias.length], 'bias');
  if (options.rows !== undefined) checkRows(options.rows, w.rows);
  return out;
}

/** A typed error unless `rows` are unique indices in [0, count) (LinearOptions.rows). */
export function checkRows(rows: Int32Array, count: number): void {
  checkIndices(rows, count, 'rows index');
}

/**
 * Zero every output row of y [batch, width] that is not in `rows`: LinearOptions.rows for a backend
 * that computed them all.
 */
export function keepRows(y: Float32Array, batch: number, width: number, rows: Int32Array): Float32Array {
  const keep = new Uint8Array(width);
  for (const r of rows) keep[r] = 1;
  for (let b = 0; b < batch; b++) for (let o = 0; o < width; o++) if (keep[o] === 0) y[b * width + o] = 0;
  return y;
}
