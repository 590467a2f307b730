// WGSL sources. Every kernel reads values through `val(i)`, so f32, and f16 stored two per u32 and
// decoded with unpack2x16float (core WGSL: no reliance on the shader-f16 feature), share one body.
// No kernel depends on a subgroup size; reductions go through workgroup memory.
import type { ValueDType } from '@sparsekit/sparse-formats';

/** Threads per workgroup of the row kernels, and the batch columns each workgroup computes. */
export const ROW_THREADS = 64;
export const BATCH_TILE = 4;
/** Tile edge of the dense GEMM. */
export const GEMM_TILE = 16;

export type RowFormat = 'dense' | 'csr' | 'nm' | 'bitmask';

function valueAccess(dtype: ValueDType): string {
  return dtype === 'f32'
    ? `@group(0) @binding(0) var<storage, read> vals: array<f32>;
fn val(i: u32) -> f32 { return vals[i]; }`
    : `@group(0) @binding(0) var<storage, read> vals: array<u32>;
fn val(i: u32) -> f32 {
  let pair = unpack2x16float(vals[i >> 1u]);
  return select(pair.x, pair.y, (i & 1u) == 1u);
}`;
}

const COMMON = `
struct Params { rows: u32, cols: u32, batch: u32, hasBias: u32, a: u32, b: u32, c: u32, d: u32 }
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;
`;

/** The per-format loop over a row's (column, value) pairs; `take(c, v)` accumulates. */
function rowLoop(format: RowFormat): { bindings: string; loop: string } {
  switch (format) {
    case 'dense':
      return {
        bindings: '',
        loop: `for (var c = t; c < p.cols; c += ${ROW_THREADS}u) { take(c, val(row * p.cols + c)); }`,
      };
    case 'csr':
      return {
        bindings: `@group(0) @binding(5) var<storage, read> indptr: array<u32>;
@group(0) @binding(6) var<storage, read> indices: array<u32>;`,
        loop: `let end = indptr[row + 1u];
  for (var k = indptr[row] + t; k < end; k += ${ROW_THREADS}u) { take(indices[k], val(k)); }`,
      };
    case 'nm':
      // Positions are the N:M format's packed bit fields (p.a = bits per position), read in place.
      return {
        bindings: `@group(0) @binding(5) var<storage, read> positions: array<u32>;
override N: u32;
override M: u32;
fn position(slot: u32) -> u32 {
  let bit = slot * p.a;
  let word = bit >> 5u;
  let shift = bit & 31u;
  var v = positions[word] >> shift;
  if (shift + p.a > 32u) { v |= positions[word + 1u] << (32u - shift); }
  return v & ((1u << p.a) - 1u);
}`,
        loop: `let slots = (p.cols / M) * N;
  for (var s = t; s < slots; s += ${ROW_THREADS}u) {
    let slot = row * slots + s;
    take((s / N) * M + position(slot), val(slot));
  }`,
      };
    case 'bitmask':
      // p.a = 32-bit words per row; offsets = index of the first value of each word.
      return {
        bindings: `@group(0) @binding(5) var<storage, read> mask: array<u32>;
@group(0) @binding(6) var<storage, read> offsets: array<u32>;`,
        loop: `for (var w = t; w < p.a; w += ${ROW_THREADS}u) {
    var bits = mask[row * p.a + w];
    var k = offsets[row * p.a + w];
    while (bits != 0u) {
      take(w * 32u + countTrailingZeros(bits), val(k));
      k += 1u;
      bits &= bits - 1u;
    }
  }`,
      };
  }
}

/**
 * The row kernels' end: each thread's BATCH_TILE sums added over the workgroup in workgroup memory,
 * then threads t < count write batch column base + t of output `row` (with its bias) where `write`.
 * Called in uniform control flow (it holds barriers).
 */
const STORE_ROW = `
var<workgroup> partial: array<f32, ${ROW_THREADS * BATCH_TILE}>;
fn storeRow(t: u32, sums: array<f32, ${BATCH_TILE}>, row: u32, write: bool, base: u32, count: u32) {
  for (var j = 0u; j < ${BATCH_TILE}u; j++) { partial[j * ${ROW_THREADS}u + t] = sums[j]; }
  workgroupBarrier();
  for (var s = ${ROW_THREADS / 2}u; s > 0u; s >>= 1u) {
    if (t < s) {
      for (var j = 0u; j < ${BATCH_TILE}u; j++) {
        partial[j * ${ROW_THREADS}u + t] += partial[j * ${ROW_THREADS}u + t + s];
      }
    }
    workgroupBarrier();
  }
  if (write && t < count) {
    var out = partial[t * ${ROW_THREADS}u];
    if (p.hasBias != 0u) { out += bias[row]; }
    y[(base + t) * p.rows + row] = out;
  }
}`;

/**
 * y[b, row] = sum over the row's nonzeros of W[row, c] x[b, c] (+ bias): one workgroup per row and
 * group of BATCH_TILE batch columns; threads split the row and reduce in workgroup memory.
 */
export function rowKernel(format: RowFormat, dtype: ValueDType): string {
  const { bindings, loop } = rowLoop(format);
  return `${valueAccess(dtype)}
${COMMON}
${bindings}
${STORE_ROW}
var<private> acc: array<f32, ${BATCH_TILE}>;
var<private> b0: u32;
var<private> nb: u32;

fn take(c: u32, v: f32) {
  for (var j = 0u; j < nb; j++) { acc[j] += v * x[(b0 + j) * p.cols + c]; }
}

@compute @workgroup_size(${ROW_THREADS})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let row = wg.x + wg.y * 65535u;
  let t = lid.x;
  b0 = wg.z * ${BATCH_TILE}u;
  nb = min(${BATCH_TILE}u, p.batch - b0);
  if (row < p.rows) {
    ${loop}
  }
  storeRow(t, acc, row, row < p.rows, b0, nb);
}`;
}

/**
 * BSR y = x W^T (+ bias) with R x C blocks (override constants): one workgroup per block row and
 * group of BATCH_TILE batch columns. For each of the block row's R output rows, threads split the
 * row's (block, column) pairs, so consecutive threads read consecutive values of a block and
 * consecutive inputs of its run (one block index per C values), and reduce in workgroup memory.
 */
export function bsrKernel(dtype: ValueDType): string {
  return `${valueAccess(dtype)}
${COMMON}
@group(0) @binding(5) var<storage, read> indptr: array<u32>;
@group(0) @binding(6) var<storage, read> indices: array<u32>;
override R: u32;
override C: u32;
${STORE_ROW}

@compute @workgroup_size(${ROW_THREADS})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let br = wg.x + wg.y * 65535u;
  let t = lid.x;
  let b0 = wg.z * ${BATCH_TILE}u;
  let nb = min(${BATCH_TILE}u, p.batch - b0);
  let inside = br < p.rows / R;
  for (var r = 0u; r < R; r++) {
    var acc = array<f32, ${BATCH_TILE}>();
    if (inside) {
      let start = indptr[br];
      let pairs = (indptr[br + 1u] - start) * C;
      for (var i = t; i < pairs; i += ${ROW_THREADS}u) {
        let k = start + i / C;
        let c = indices[k] * C + i % C;
        let v = val((k * R + r) * C + i % C);
        for (var j = 0u; j < nb; j++) { acc[j] += v * x[(b0 + j) * p.cols + c]; }
      }
    }
    storeRow(t, acc, br * R + r, inside, b0, nb);
    workgroupBarrier(); // the next row's sums overwrite what this one's store read
  }
}`;
}

/** Dense y = x W^T with GEMM_TILE x GEMM_TILE output tiles and both operands staged in workgroup memory. */
export function gemmKernel(dtype: ValueDType): string {
  const T = GEMM_TILE;
  return `${valueAccess(dtype)}
${COMMON}
var<workgroup> xs: array<array<f32, ${T}>, ${T}>;
var<workgroup> ws: array<array<f32, ${T}>, ${T}>;

@compute @workgroup_size(${T}, ${T})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let o = wg.x * ${T}u + lid.x;
  let b = wg.y * ${T}u + lid.y;
  var sum = 0.0;
  for (var k0 = 0u; k0 < p.cols; k0 += ${T}u) {
    let xb = wg.y * ${T}u + lid.y;
    let xk = k0 + lid.x;
    var xv = 0.0;
    if (xb < p.batch && xk < p.cols) { xv = x[xb * p.cols + xk]; }
    xs[lid.y][lid.x] = xv;
    let wo = wg.x * ${T}u + lid.y;
    var wv = 0.0;
    if (wo < p.rows && xk < p.cols) { wv = val(wo * p.cols + xk); }
    ws[lid.y][lid.x] = wv;
    workgroupBarrier();
    for (var k = 0u; k < ${T}u; k++) { sum += xs[lid.y][k] * ws[lid.x][k]; }
    workgroupBarrier();
  }
  if (o < p.rows && b < p.batch) {
    var out = sum;
    if (p.hasBias != 0u) { out += bias[o]; }
    y[b * p.rows + o] = out;
  }
}`;
}

/**
 * Block-sparse attention forward: one workgroup per (query block, head), one thread per query row,
 * online softmax over the key blocks listed for the query block (masked blocks are never visited).
 */
export function attentionKernel(blockSize: number, maxHeadDim: number): string {
  return `
struct AttentionParams { heads: u32, seq: u32, dim: u32, causal: u32, scale: f32, kvHeads: u32, keys: u32, qOffset: u32 }
@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> k: array<f32>;
@group(0) @binding(2) var<storage, read> v: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<uniform> p: AttentionParams;
@group(0) @binding(5) var<storage, read> blockPtr: array<u32>;
@group(0) @binding(6) var<storage, read> blockCols: array<u32>;

@compute @workgroup_size(${blockSize})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let qb = wg.x;
  let head = wg.y;
  let kvHead = head / (p.heads / p.kvHeads);
  let qi = qb * ${blockSize}u + lid.x;
  if (qi >= p.seq) { return; }
  var qv: array<f32, ${maxHeadDim}>;
  var acc: array<f32, ${maxHeadDim}>;
  let qBase = (head * p.seq + qi) * p.dim;
  for (var d = 0u; d < p.dim; d++) { qv[d] = q[qBase + d] * p.scale; }
  var m = -3.0e38;
  var s = 0.0;
  for (var bi = blockPtr[qb]; bi < blockPtr[qb + 1u]; bi++) {
    let kb = blockCols[bi];
    for (var j = 0u; j < ${blockSize}u; j++) {
      let kj = kb * ${blockSize}u + j;
      if (kj >= p.keys || (p.causal != 0u && kj > qi + p.qOffset)) { continue; }
      let kBase = (kvHead * p.keys + kj) * p.dim;
      var dot = 0.0;
      for (var d = 0u; d < p.dim; d++) { dot += qv[d] * k[kBase + d]; }
      let mNew = max(m, dot);
      let correction = exp(m - mNew);
      let w = exp(dot - mNew);
      s = s * correction + w;
      for (var d = 0u; d < p.dim; d++) { acc[d] = acc[d] * correction + w * v[kBase + d]; }
      m = mNew;
    }
  }
  let inv = select(0.0, 1.0 / s, s > 0.0);
  for (var d = 0u; d < p.dim; d++) { out[qBase + d] = acc[d] * inv; }
}`;
}

/** Threads per workgroup of the gather GEMV; each thread owns two adjacent outputs. */
export const GATHER_THREADS = 64;

const gatherParams = (binding: number) => `
struct GatherParams { rows: u32, pairs: u32, count: u32, chunk: u32, splits: u32, hasBias: u32, c: u32, d: u32 }
@group(0) @binding(${binding}) var<uniform> p: GatherParams;
`;

/**
 * The column-gather GEMV, y = W[:, active] x[active] (+ bias), over W^T [in, out] with each column
 * (one input's weights for every output) padded to an even length, so that one 32-bit word holds two
 * f16 outputs of the same column (`unpack2x16float`, core WGSL: every adapter, `shader-f16` or not)
 * and a vec2<f32> two f32 ones. `column(i, pair)` is outputs 2 pair and 2 pair + 1 of column i.
 *
 * A workgroup owns GATHER_THREADS x 2 consecutive outputs and one split (wg.z) of the active list:
 * it stages that split's (index, x value) pairs in workgroup memory a tile at a time, and every
 * thread reads one word per active column, adjacent threads adjacent words (coalesced). Only the
 * active columns of W^T are ever read. With one split the kernel adds the bias and writes y; with
 * several (split-K, so that short outputs still fill a large GPU) each split writes its partial sums
 * to row wg.z of a [splits, rows] buffer and `gatherReduceKernel` adds them up in a fixed order.
 */
export function gatherKernel(dtype: ValueDType): string {
  const T = GATHER_THREADS;
  const columns =
    dtype === 'f32'
      ? `@group(0) @binding(0) var<storage, read> cols: array<vec2<f32>>;
fn column(i: u32, pair: u32) -> vec2<f32> { return cols[i * p.pairs + pair]; }`
      : `@group(0) @binding(0) var<storage, read> cols: array<u32>;
fn column(i: u32, pair: u32) -> vec2<f32> { return unpack2x16float(cols[i * p.pairs + pair]); }`;
  return `${columns}
${gatherParams(4)}
// (input index, bit pattern of x[index]) for each active input.
@group(0) @binding(1) var<storage, read> inputs: array<vec2<u32>>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
var<workgroup> tile: array<vec2<u32>, ${T}>;

@compute @workgroup_size(${T})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let pair = (wg.x + wg.y * 65535u) * ${T}u + lid.x;
  let begin = wg.z * p.chunk;
  let end = min(begin + p.chunk, p.count);
  var acc = vec2<f32>(0.0, 0.0);
  for (var base = begin; base < end; base += ${T}u) {
    let n = min(${T}u, end - base);
    workgroupBarrier();
    if (lid.x < n) { tile[lid.x] = inputs[base + lid.x]; }
    workgroupBarrier();
    if (pair < p.pairs) {
      for (var j = 0u; j < n; j++) {
        let e = tile[j];
        acc += column(e.x, pair) * bitcast<f32>(e.y);
      }
    }
  }
  if (pair >= p.pairs) { return; }
  let o = pair * 2u;
  if (p.splits == 1u) {
    if (p.hasBias != 0u) {
      acc.x += bias[o];
      if (o + 1u < p.rows) { acc.y += bias[o + 1u]; }
    }
    y[o] = acc.x;
    if (o + 1u < p.rows) { y[o + 1u] = acc.y; }
  } else {
    let row = wg.z * p.rows;
    y[row + o] = acc.x;
    if (o + 1u < p.rows) { y[row + o + 1u] = acc.y; }
  }
}`;
}

/** y[o] = sum over splits s of partial[s, o] (+ bias[o]), in split order: one thread per output. */
export function gatherReduceKernel(): string {
  const T = GATHER_THREADS;
  return `${gatherParams(3)}
@group(0) @binding(0) var<storage, read> partial: array<f32>;
@group(0) @binding(1) var<storage, read> bias: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(${T})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let o = (wg.x + wg.y * 65535u) * ${T}u + lid.x;
  if (o >= p.rows) { return; }
  var sum = 0.0;
  for (var s = 0u; s < p.splits; s++) { sum += partial[s * p.rows + o]; }
  if (p.hasBias != 0u) { sum += bias[o]; }
  y[o] = sum;
}`;
}
