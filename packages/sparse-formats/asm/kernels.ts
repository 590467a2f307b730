// Sparse and dense kernels for y = x W^T, compiled by AssemblyScript to wasm with SIMD.
// Pointers are byte offsets into the (shared) memory the host provides; nothing here allocates.
// Every kernel computes output rows [r0, r1) of W (the gather GEMV, alternatively, a range of its
// active columns), so threads can split the work.
//
// Layouts: W is [rows, cols]. Dense and BSR kernels read x as [batch, cols] (row-major); CSR, N:M and
// bitmask kernels read xt = x^T as [cols, batch] so that the batch is contiguous for each column.
// y is always [batch, rows]. Values are f32 or f16 (bits); f16 kernels accumulate in f32 and assume
// finite values (NaN/Inf are rejected when a matrix is prepared).

// ---------------------------------------------------------------------------------------------
// f16 -> f32 without floating-point work on subnormal inputs (which costs a microcode assist on
// x86): a normal half moves its exponent and mantissa into place and rebiases the exponent by 112;
// a zero or subnormal half m * 2^-24 is built as 2^-14 * (1 + m * 2^-10) and 2^-14 is subtracted
// (exact). Signs are copied. Exact for every finite half.

import { hsum } from './simd';

const TWO_POW_MINUS_14: f32 = 6.103515625e-5;

// @ts-ignore: decorator
@inline function half(h: u32): f32 {
  const small = (h & 0x7c00) == 0;
  const bits = (((h & 0x7fff) << 13) + (small ? 0x38800000 : 0x38000000));
  const magnitude = reinterpret<f32>(bits) - (small ? TWO_POW_MINUS_14 : 0);
  return reinterpret<f32>(reinterpret<u32>(magnitude) | ((h & 0x8000) << 16));
}

// Vector constants are read from memory (the host writes them at CONSTANTS when it creates the
// memory): V8 rebuilds a v128 constant with several instructions at every use inside a loop, while
// a load folds into the instruction that uses it.
const CONSTANTS: usize = 512;
// @ts-ignore: decorator
@inline function k(i: usize): v128 {
  return v128.load(CONSTANTS + (i << 4));
}
// Slots: 0 0x8000, 1 0x7fff, 2 0x7c00, 3 0x38000000, 4 0x00800000, 5 2^-14 (f32), 6 zero,
// 7 0x8fffffff, 8 2^112 (f32).

// @ts-ignore: decorator
@inline function half4(bits: v128): v128 {
  const sign = i32x4.shl(v128.and(bits, k(0)), 16);
  const small = i32x4.eq(v128.and(bits, k(2)), k(6));
  const offset = v128.or(k(3), v128.and(small, k(4)));
  const value = f32x4.sub(i32x4.add(i32x4.shl(v128.and(bits, k(1)), 13), offset), v128.and(small, k(5)));
  return v128.or(value, sign);
}

// @ts-ignore: decorator
@inline function value<V>(values: usize, k: usize): f32 {
  if (sizeof<V>() == 2) return half(<u32>load<u16>(values + (k << 1)));
  return load<f32>(values + (k << 2));
}

// @ts-ignore: decorator
@inline function value4<V>(values: usize, k: usize): v128 {
  if (sizeof<V>() == 2) return half4(v128.load16x4_u(values + (k << 1)));
  return v128.load(values + (k << 2));
}

// @ts-ignore: decorator
@inline function index<I>(indices: usize, k: usize): usize {
  if (sizeof<I>() == 2) return <usize>load<u16>(indices + (k << 1));
  return <usize>load<u32>(indices + (k << 2));
}


// ---------------------------------------------------------------------------------------------
// Dense: y[b, o] = dot(W[o, :], x[b, :]). Tiles of 4 rows x 2 batch rows (8 vector accumulators),
// so each loaded W vector is used twice and each x vector four times.

function denseLinear<V>(w: usize, x: usize, y: usize, rows: i32, cols: i32, batch: i32, r0: i32, r1: i32): void {
  const c4 = cols & ~3;
  const rowStride = <usize>cols;
  let o = r0;
  for (; o + 4 <= r1; o += 4) {
    const w0 = <usize>o * rowStride;
    const w1 = w0 + rowStride;
    const w2 = w1 + rowStride;
    const w3 = w2 + rowStride;
    let b = 0;
    for (; b + 2 <= batch; b += 2) {
      const xa = x + ((<usize>b * rowStride) << 2);
      const xb = xa + (rowStride << 2);
      let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
      let b0 = f32x4.splat(0), b1 = f32x4.splat(0), b2 = f32x4.splat(0), b3 = f32x4.splat(0);
      for (let c = 0; c < c4; c += 4) {
        const va = v128.load(xa + (<usize>c << 2));
        const vb = v128.load(xb + (<usize>c << 2));
        const v0 = value4<V>(w, w0 + c);
        const v1 = value4<V>(w, w1 + c);
        const v2 = value4<V>(w, w2 + c);
        const v3 = value4<V>(w, w3 + c);
        a0 = f32x4.add(a0, f32x4.mul(v0, va));
        a1 = f32x4.add(a1, f32x4.mul(v1, va));
        a2 = f32x4.add(a2, f32x4.mul(v2, va));
        a3 = f32x4.add(a3, f32x4.mul(v3, va));
        b0 = f32x4.add(b0, f32x4.mul(v0, vb));
        b1 = f32x4.add(b1, f32x4.mul(v1, vb));
        b2 = f32x4.add(b2, f32x4.mul(v2, vb));
        b3 = f32x4.add(b3, f32x4.mul(v3, vb));
      }
      let s0 = hsum(a0), s1 = hsum(a1), s2 = hsum(a2), s3 = hsum(a3);
      let t0 = hsum(b0), t1 = hsum(b1), t2 = hsum(b2), t3 = hsum(b3);
      for (let c = c4; c < cols; c++) {
        const xva = load<f32>(xa + (<usize>c << 2));
        const xvb = load<f32>(xb + (<usize>c << 2));
        const v0 = value<V>(w, w0 + c), v1 = value<V>(w, w1 + c), v2 = value<V>(w, w2 + c), v3 = value<V>(w, w3 + c);
        s0 += v0 * xva; s1 += v1 * xva; s2 += v2 * xva; s3 += v3 * xva;
        t0 += v0 * xvb; t1 += v1 * xvb; t2 += v2 * xvb; t3 += v3 * xvb;
      }
      const ya = y + ((<usize>b * <usize>rows + <usize>o) << 2);
      const yb = ya + (<usize>rows << 2);
      store<f32>(ya, s0); store<f32>(ya, s1, 4); store<f32>(ya, s2, 8); store<f32>(ya, s3, 12);
      store<f32>(yb, t0); store<f32>(yb, t1, 4); store<f32>(yb, t2, 8); store<f32>(yb, t3, 12);
    }
    for (; b < batch; b++) {
      const xa = x + ((<usize>b * rowStride) << 2);
      let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
      for (let c = 0; c < c4; c += 4) {
        const va = v128.load(xa + (<usize>c << 2));
        a0 = f32x4.add(a0, f32x4.mul(value4<V>(w, w0 + c), va));
        a1 = f32x4.add(a1, f32x4.mul(value4<V>(w, w1 + c), va));
        a2 = f32x4.add(a2, f32x4.mul(value4<V>(w, w2 + c), va));
        a3 = f32x4.add(a3, f32x4.mul(value4<V>(w, w3 + c), va));
      }
      let s0 = hsum(a0), s1 = hsum(a1), s2 = hsum(a2), s3 = hsum(a3);
      for (let c = c4; c < cols; c++) {
        const xva = load<f32>(xa + (<usize>c << 2));
        s0 += value<V>(w, w0 + c) * xva; s1 += value<V>(w, w1 + c) * xva;
        s2 += value<V>(w, w2 + c) * xva; s3 += value<V>(w, w3 + c) * xva;
      }
      const ya = y + ((<usize>b * <usize>rows + <usize>o) << 2);
      store<f32>(ya, s0); store<f32>(ya, s1, 4); store<f32>(ya, s2, 8); store<f32>(ya, s3, 12);
    }
  }
  for (; o < r1; o++) {
    const w0 = <usize>o * rowStride;
    for (let b = 0; b < batch; b++) {
      const xa = x + ((<usize>b * rowStride) << 2);
      let a0 = f32x4.splat(0);
      for (let c = 0; c < c4; c += 4) a0 = f32x4.add(a0, f32x4.mul(value4<V>(w, w0 + c), v128.load(xa + (<usize>c << 2))));
      let s0 = hsum(a0);
      for (let c = c4; c < cols; c++) s0 += value<V>(w, w0 + c) * load<f32>(xa + (<usize>c << 2));
      store<f32>(y + ((<usize>b * <usize>rows + <usize>o) << 2), s0);
    }
  }
}

export function dense_linear_f32(w: usize, x: usize, y: usize, rows: i32, cols: i32, batch: i32, r0: i32, r1: i32): void {
  denseLinear<f32>(w, x, y, rows, cols, batch, r0, r1);
}
export function dense_linear_f16(w: usize, x: usize, y: usize, rows: i32, cols: i32, batch: i32, r0: i32, r1: i32): void {
  denseLinear<u16>(w, x, y, rows, cols, batch, r0, r1);
}

// Dense rows of a list, batch 1: y[list[i]] = dot(W[list[i], :], x) for i in [i0, i1); the other
// outputs are not written (the caller zeroes them). For the predicted-active channels of an MLP at
// decode (LinearOptions.rows): four listed rows at a time share each x vector.

function denseRows<V>(w: usize, x: usize, y: usize, cols: i32, list: usize, i0: i32, i1: i32): void {
  const c4 = cols & ~3;
  const stride = <usize>cols;
  let i = i0;
  for (; i + 4 <= i1; i += 4) {
    const o0 = <usize>load<i32>(list + (<usize>i << 2));
    const o1 = <usize>load<i32>(list + (<usize>i << 2), 4);
    const o2 = <usize>load<i32>(list + (<usize>i << 2), 8);
    const o3 = <usize>load<i32>(list + (<usize>i << 2), 12);
    const w0 = o0 * stride, w1 = o1 * stride, w2 = o2 * stride, w3 = o3 * stride;
    let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
    for (let c = 0; c < c4; c += 4) {
      const va = v128.load(x + (<usize>c << 2));
      a0 = f32x4.add(a0, f32x4.mul(value4<V>(w, w0 + c), va));
      a1 = f32x4.add(a1, f32x4.mul(value4<V>(w, w1 + c), va));
      a2 = f32x4.add(a2, f32x4.mul(value4<V>(w, w2 + c), va));
      a3 = f32x4.add(a3, f32x4.mul(value4<V>(w, w3 + c), va));
    }
    let s0 = hsum(a0), s1 = hsum(a1), s2 = hsum(a2), s3 = hsum(a3);
    for (let c = c4; c < cols; c++) {
      const xv = load<f32>(x + (<usize>c << 2));
      s0 += value<V>(w, w0 + c) * xv; s1 += value<V>(w, w1 + c) * xv;
      s2 += value<V>(w, w2 + c) * xv; s3 += value<V>(w, w3 + c) * xv;
    }
    store<f32>(y + (o0 << 2), s0); store<f32>(y + (o1 << 2), s1);
    store<f32>(y + (o2 << 2), s2); store<f32>(y + (o3 << 2), s3);
  }
  for (; i < i1; i++) {
    const o = <usize>load<i32>(list + (<usize>i << 2));
    const w0 = o * stride;
    let a0 = f32x4.splat(0);
    for (let c = 0; c < c4; c += 4) a0 = f32x4.add(a0, f32x4.mul(value4<V>(w, w0 + c), v128.load(x + (<usize>c << 2))));
    let s0 = hsum(a0);
    for (let c = c4; c < cols; c++) s0 += value<V>(w, w0 + c) * load<f32>(x + (<usize>c << 2));
    store<f32>(y + (o << 2), s0);
  }
}

export function dense_rows_f32(w: usize, x: usize, y: usize, cols: i32, list: usize, i0: i32, i1: i32): void {
  denseRows<f32>(w, x, y, cols, list, i0, i1);
}
export function dense_rows_f16(w: usize, x: usize, y: usize, cols: i32, list: usize, i0: i32, i1: i32): void {
  denseRows<u16>(w, x, y, cols, list, i0, i1);
}

// ---------------------------------------------------------------------------------------------
// Gather-style sparse rows (CSR, N:M, bitmask) share one inner step: for a nonzero v at column c,
// acc[lanes] += v * xt[c, lanes]. Batch 1 runs a scalar loop with 4 accumulators; wider batches
// run 16 lanes (4 vectors) at a time, then 4, then single lanes.

// @ts-ignore: decorator
@inline function storeLanes(y: usize, rows: i32, o: i32, b: i32, acc: v128): void {
  const base = y + ((<usize>b * <usize>rows + <usize>o) << 2);
  const stride = <usize>rows << 2;
  store<f32>(base, f32x4.extract_lane(acc, 0));
  store<f32>(base + stride, f32x4.extract_lane(acc, 1));
  store<f32>(base + 2 * stride, f32x4.extract_lane(acc, 2));
  store<f32>(base + 3 * stride, f32x4.extract_lane(acc, 3));
}

// ---------------------------------------------------------------------------------------------
// Batch 1 over a list of (column, value) pairs k in [k0, k1): values are read (and f16 decoded) 8 at
// a time as vectors, the 8 x entries are gathered into two vectors lane by lane.

// x entries of the four columns at ip[j .. j + 3] (ip points at indices of type I).
// @ts-ignore: decorator
@inline function gather4<I>(ip: usize, j: usize, xt: usize): v128 {
  const w = sizeof<I>();
  let g = v128.load32_zero(xt + (<usize>load<I>(ip + j * w) << 2));
  g = v128.load32_lane(xt + (<usize>load<I>(ip + (j + 1) * w) << 2), g, 1);
  g = v128.load32_lane(xt + (<usize>load<I>(ip + (j + 2) * w) << 2), g, 2);
  return v128.load32_lane(xt + (<usize>load<I>(ip + (j + 3) * w) << 2), g, 3);
}

// Values vp[j .. j + 3] as f32 (f16 decoded).
// @ts-ignore: decorator
@inline function values4<V>(vp: usize, j: usize): v128 {
  if (sizeof<V>() == 2) return half4(v128.load16x4_u(vp + (j << 1)));
  return v128.load(vp + (j << 2));
}

function gatherDot<I, V>(indices: usize, values: usize, k0: usize, k1: usize, xt: usize): f32 {
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
  let ip = indices + k0 * sizeof<I>();
  let vp = values + k0 * sizeof<V>();
  let left = k1 - k0;
  for (; left >= 16; left -= 16) {
    a0 = f32x4.add(a0, f32x4.mul(values4<V>(vp, 0), gather4<I>(ip, 0, xt)));
    a1 = f32x4.add(a1, f32x4.mul(values4<V>(vp, 4), gather4<I>(ip, 4, xt)));
    a2 = f32x4.add(a2, f32x4.mul(values4<V>(vp, 8), gather4<I>(ip, 8, xt)));
    a3 = f32x4.add(a3, f32x4.mul(values4<V>(vp, 12), gather4<I>(ip, 12, xt)));
    ip += 16 * sizeof<I>();
    vp += 16 * sizeof<V>();
  }
  for (; left >= 4; left -= 4) {
    a0 = f32x4.add(a0, f32x4.mul(values4<V>(vp, 0), gather4<I>(ip, 0, xt)));
    ip += 4 * sizeof<I>();
    vp += 4 * sizeof<V>();
  }
  let s = hsum(f32x4.add(f32x4.add(a0, a1), f32x4.add(a2, a3)));
  for (let j: usize = 0; j < left; j++) {
    s += value<V>(vp, j) * load<f32>(xt + (<usize>load<I>(ip + j * sizeof<I>()) << 2));
  }
  return s;
}

// ---------------------------------------------------------------------------------------------
// Wide batches: y is written transposed, yt [rows, batch] with columns xtStride(batch) bytes apart
// (the host transposes it back). Consecutive rows are decoded into a tile in scratch (for each nonzero, the byte
// offset of its column in xt and its f32 value; row boundaries in `starts`) until the tile is full.
// The tile then runs over the batch 32 lanes at a time (then 16, 8, 4, 1): each row keeps its lanes
// in registers, and the 32-lane slice of xt the tile reads stays in L2 from one row to the next.
//
// Scratch layout (per thread): starts u32[TILE_ROWS + 1], padded to TILE_STARTS_BYTES, then
// offsets u32[capacity], then values f32[capacity], capacity = tileCapacity(cols) entries.

const TILE_ROWS: i32 = 256;

// Bytes from one column of xt to the next: the batch rounded up to whole cache lines, and to an
// odd number of them, so that the columns a row gathers spread over all cache sets (a power-of-two
// stride would use a fraction of L1 and L2 and thrash them).
// @ts-ignore: decorator
@inline function xtStride(batch: i32): u32 {
  return ((((<u32>batch << 2) + 63) >> 6) | 1) << 6;
}
const TILE_STARTS_BYTES: usize = 1040;

// @ts-ignore: decorator
@inline function tileCapacity(cols: i32): usize {
  return <usize>max(cols << 2, 16384);
}

function runTile(scratch: usize, capacity: usize, tileRows: i32, o0: i32, xt: usize, y: usize, rows: i32, batch: i32): void {
  const offs = scratch + TILE_STARTS_BYTES;
  const vals = offs + (capacity << 2);
  const ys = <usize>xtStride(batch);
  let b = 0;
  for (; b + 32 <= batch; b += 32) {
    const xb = xt + (<usize>b << 2);
    for (let r = 0; r < tileRows; r++) {
      const k1 = <usize>load<u32>(scratch + (<usize>(r + 1) << 2));
      let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
      let a4 = f32x4.splat(0), a5 = f32x4.splat(0), a6 = f32x4.splat(0), a7 = f32x4.splat(0);
      for (let k = <usize>load<u32>(scratch + (<usize>r << 2)); k < k1; k++) {
        const v = v128.load32_splat(vals + (k << 2));
        const p = xb + <usize>load<u32>(offs + (k << 2));
        a0 = f32x4.add(a0, f32x4.mul(v, v128.load(p)));
        a1 = f32x4.add(a1, f32x4.mul(v, v128.load(p, 16)));
        a2 = f32x4.add(a2, f32x4.mul(v, v128.load(p, 32)));
        a3 = f32x4.add(a3, f32x4.mul(v, v128.load(p, 48)));
        a4 = f32x4.add(a4, f32x4.mul(v, v128.load(p, 64)));
        a5 = f32x4.add(a5, f32x4.mul(v, v128.load(p, 80)));
        a6 = f32x4.add(a6, f32x4.mul(v, v128.load(p, 96)));
        a7 = f32x4.add(a7, f32x4.mul(v, v128.load(p, 112)));
      }
      const o = o0 + r;
      v128.store(y + <usize>(o) * ys + (<usize>(b) << 2), a0); v128.store(y + <usize>(o) * ys + (<usize>(b + 4) << 2), a1); v128.store(y + <usize>(o) * ys + (<usize>(b + 8) << 2), a2); v128.store(y + <usize>(o) * ys + (<usize>(b + 12) << 2), a3);
      v128.store(y + <usize>(o) * ys + (<usize>(b + 16) << 2), a4); v128.store(y + <usize>(o) * ys + (<usize>(b + 20) << 2), a5); v128.store(y + <usize>(o) * ys + (<usize>(b + 24) << 2), a6); v128.store(y + <usize>(o) * ys + (<usize>(b + 28) << 2), a7);
    }
  }
  for (; b + 16 <= batch; b += 16) {
    const xb = xt + (<usize>b << 2);
    for (let r = 0; r < tileRows; r++) {
      const k1 = <usize>load<u32>(scratch + (<usize>(r + 1) << 2));
      let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
      for (let k = <usize>load<u32>(scratch + (<usize>r << 2)); k < k1; k++) {
        const v = v128.load32_splat(vals + (k << 2));
        const p = xb + <usize>load<u32>(offs + (k << 2));
        a0 = f32x4.add(a0, f32x4.mul(v, v128.load(p)));
        a1 = f32x4.add(a1, f32x4.mul(v, v128.load(p, 16)));
        a2 = f32x4.add(a2, f32x4.mul(v, v128.load(p, 32)));
        a3 = f32x4.add(a3, f32x4.mul(v, v128.load(p, 48)));
      }
      const o = o0 + r;
      v128.store(y + <usize>(o) * ys + (<usize>(b) << 2), a0); v128.store(y + <usize>(o) * ys + (<usize>(b + 4) << 2), a1); v128.store(y + <usize>(o) * ys + (<usize>(b + 8) << 2), a2); v128.store(y + <usize>(o) * ys + (<usize>(b + 12) << 2), a3);
    }
  }
  for (; b + 8 <= batch; b += 8) {
    const xb = xt + (<usize>b << 2);
    for (let r = 0; r < tileRows; r++) {
      const k1 = <usize>load<u32>(scratch + (<usize>(r + 1) << 2));
      let a0 = f32x4.splat(0), a1 = f32x4.splat(0);
      for (let k = <usize>load<u32>(scratch + (<usize>r << 2)); k < k1; k++) {
        const v = v128.load32_splat(vals + (k << 2));
        const p = xb + <usize>load<u32>(offs + (k << 2));
        a0 = f32x4.add(a0, f32x4.mul(v, v128.load(p)));
        a1 = f32x4.add(a1, f32x4.mul(v, v128.load(p, 16)));
      }
      v128.store(y + <usize>(o0 + r) * ys + (<usize>(b) << 2), a0); v128.store(y + <usize>(o0 + r) * ys + (<usize>(b + 4) << 2), a1);
    }
  }
  for (; b + 4 <= batch; b += 4) {
    const xb = xt + (<usize>b << 2);
    for (let r = 0; r < tileRows; r++) {
      const k1 = <usize>load<u32>(scratch + (<usize>(r + 1) << 2));
      let a0 = f32x4.splat(0);
      for (let k = <usize>load<u32>(scratch + (<usize>r << 2)); k < k1; k++) {
        a0 = f32x4.add(a0, f32x4.mul(v128.load32_splat(vals + (k << 2)), v128.load(xb + <usize>load<u32>(offs + (k << 2)))));
      }
      v128.store(y + <usize>(o0 + r) * ys + (<usize>(b) << 2), a0);
    }
  }
  for (; b < batch; b++) {
    const xb = xt + (<usize>b << 2);
    for (let r = 0; r < tileRows; r++) {
      const k1 = <usize>load<u32>(scratch + (<usize>(r + 1) << 2));
      let s: f32 = 0;
      for (let k = <usize>load<u32>(scratch + (<usize>r << 2)); k < k1; k++) {
        s += load<f32>(vals + (k << 2)) * load<f32>(xb + <usize>load<u32>(offs + (k << 2)));
      }
      store<f32>(y + <usize>(o0 + r) * ys + (<usize>b << 2), s);
    }
  }
}

// Row kernels drive a tile like this: `begin` before the first row, `room` before each row (runs
// and empties the tile when `bound` more entries might not fit), `entry` per nonzero, `endRow`
// after each row, `finish` after the last. The state lives in three locals of the caller.

// @ts-ignore: decorator
@inline function tileEntry(scratch: usize, capacity: usize, count: usize, column: u32, xs: u32, v: f32): void {
  const offs = scratch + TILE_STARTS_BYTES;
  store<u32>(offs + (count << 2), column * xs);
  store<f32>(offs + (capacity << 2) + (count << 2), v);
}

// Tile entries from `count` on: values vp[0 .. n) as f32, and columns ip[0 .. n) as xt offsets.
// @ts-ignore: decorator
@inline function tileValues<V>(scratch: usize, capacity: usize, count: usize, vp: usize, n: usize): void {
  const vals = scratch + TILE_STARTS_BYTES + (capacity << 2) + (count << 2);
  let j: usize = 0;
  for (; j + 4 <= n; j += 4) v128.store(vals + (j << 2), values4<V>(vp, j));
  for (; j < n; j++) store<f32>(vals + (j << 2), value<V>(vp, j));
}

// @ts-ignore: decorator
@inline function tileOffsets<I>(scratch: usize, count: usize, ip: usize, n: usize, xs: u32): void {
  const offs = scratch + TILE_STARTS_BYTES + (count << 2);
  const stride = i32x4.splat(xs);
  let j: usize = 0;
  for (; j + 4 <= n; j += 4) {
    const columns = sizeof<I>() == 2 ? v128.load16x4_u(ip + (j << 1)) : v128.load(ip + (j << 2));
    v128.store(offs + (j << 2), i32x4.mul(columns, stride));
  }
  for (; j < n; j++) store<u32>(offs + (j << 2), <u32>load<I>(ip + j * sizeof<I>()) * xs);
}

// CSR: indptr i32 [rows + 1], indices I (u16 or i32), values V.
function csrLinear<I, V>(
  indptr: usize, indices: usize, values: usize, xt: usize, y: usize, rows: i32, cols: i32, batch: i32, r0: i32,
  r1: i32, scratch: usize,
): void {
  if (batch == 1) {
    for (let o = r0; o < r1; o++) {
      const k0 = <usize>load<i32>(indptr + (<usize>o << 2));
      const k1 = <usize>load<i32>(indptr + (<usize>(o + 1) << 2));
      store<f32>(y + (<usize>o << 2), gatherDot<I, V>(indices, values, k0, k1, xt));
    }
    return;
  }
  const capacity = tileCapacity(cols);
  const xs = xtStride(batch);
  let count: usize = 0, tileRows = 0, o0 = r0;
  store<u32>(scratch, 0);
  for (let o = r0; o < r1; o++) {
    const k0 = <usize>load<i32>(indptr + (<usize>o << 2));
    const k1 = <usize>load<i32>(indptr + (<usize>(o + 1) << 2));
    if (tileRows == TILE_ROWS || count + (k1 - k0) > capacity) {
      runTile(scratch, capacity, tileRows, o0, xt, y, rows, batch);
      count = 0; tileRows = 0; o0 = o;
    }
    tileValues<V>(scratch, capacity, count, values + k0 * sizeof<V>(), k1 - k0);
    tileOffsets<I>(scratch, count, indices + k0 * sizeof<I>(), k1 - k0, xs);
    count += k1 - k0;
    store<u32>(scratch + (<usize>++tileRows << 2), <u32>count);
  }
  if (tileRows > 0) runTile(scratch, capacity, tileRows, o0, xt, y, rows, batch);
}

export function csr_linear_i32_f32(indptr: usize, indices: usize, values: usize, xt: usize, y: usize, rows: i32, cols: i32, batch: i32, r0: i32, r1: i32, scratch: usize): void {
  csrLinear<i32, f32>(indptr, indices, values, xt, y, rows, cols, batch, r0, r1, scratch);
}
export function csr_linear_u16_f32(indptr: usize, indices: usize, values: usize, xt: usize, y: usize, rows: i32, cols: i32, batch: i32, r0: i32, r1: i32, scratch: usize): void {
  csrLinear<u16, f32>(indptr, indices, values, xt, y, rows, cols, batch, r0, r1, scratch);
}
export function csr_linear_i32_f16(indptr: usize, indices: usize, values: usize, xt: usize, y: usize, rows: i32, cols: i32, batch: i32, r0: i32, r1: i32, scratch: usize): void {
  csrLinear<i32, u16>(indptr, indices, values, xt, y, rows, cols, batch, r0, r1, scratch);
}
export function csr_linear_u16_f16(indptr: usize, indices: usize, values: usize, xt: usize, y: usize, rows: i32, cols: i32, batch: i32, r0: i32, r1: i32, scratch: usize): void {
  csrLinear<u16, u16>(indptr, indices, values, xt, y, rows, cols, batch, r0, r1, scratch);
}

// ---------------------------------------------------------------------------------------------
// N:M: row o, group g, slot s holds values[(o * groups + g) * n + s] at column g * m + position,
// positions packed `bits` bits each, little-endian. Reading 32 bits at any byte offset needs 3 bytes
// of padding after the packed array (the host allocates them).

// @ts-ignore: decorator
@inline function position(indices: usize, slot: usize, bits: u32, mask: u32): usize {
  const bit = slot * bits;
  return <usize>((load<u32>(indices + (bit >> 3)) >> <u32>(bit & 7)) & mask);
}

// 2:4 at batch 1: a byte of positions covers two groups (eight columns, four nonzeros). A table
// (written by the host at NM24_TABLE) maps the byte to two swizzle masks that pick the four x entries
// out of the two x vectors of those eight columns, so the four products take one vector multiply.
const NM24_TABLE: usize = 1024;

function dot24<V>(values: usize, positions: usize, xt: usize, cols: usize): f32 {
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0);
  let c: usize = 0;
  for (; c + 16 <= cols; c += 16) {
    const t0 = NM24_TABLE + (<usize>load<u8>(positions) << 5);
    const t1 = NM24_TABLE + (<usize>load<u8>(positions, 1) << 5);
    const xc = xt + (c << 2);
    const g0 = v128.or(i8x16.swizzle(v128.load(xc), v128.load(t0)), i8x16.swizzle(v128.load(xc, 16), v128.load(t0, 16)));
    const g1 = v128.or(i8x16.swizzle(v128.load(xc, 32), v128.load(t1)), i8x16.swizzle(v128.load(xc, 48), v128.load(t1, 16)));
    let v0: v128, v1: v128;
    if (sizeof<V>() == 2) {
      const h = v128.load(values);
      v0 = half4(i32x4.extend_low_i16x8_u(h));
      v1 = half4(i32x4.extend_high_i16x8_u(h));
    } else {
      v0 = v128.load(values);
      v1 = v128.load(values, 16);
    }
    a0 = f32x4.add(a0, f32x4.mul(v0, g0));
    a1 = f32x4.add(a1, f32x4.mul(v1, g1));
    values += 8 * sizeof<V>();
    positions += 2;
  }
  if (c < cols) {
    const t0 = NM24_TABLE + (<usize>load<u8>(positions) << 5);
    const xc = xt + (c << 2);
    const g0 = v128.or(i8x16.swizzle(v128.load(xc), v128.load(t0)), i8x16.swizzle(v128.load(xc, 16), v128.load(t0, 16)));
    a0 = f32x4.add(a0, f32x4.mul(value4<V>(values, 0), g0));
  }
  return hsum(f32x4.add(a0, a1));
}

function nmTiles<V>(
  values: usize, indices: usize, n: i32, m: i32, bits: i32, xt: usize, y: usize, rows: i32, cols: i32, batch: i32,
  r0: i32, r1: i32, scratch: usize,
): void {
  const groups = cols / m;
  const slotsPerRow = <usize>(groups * n);
  const mask: u32 = (1 << bits) - 1;
  const fast24 = n == 2 && m == 4 && (cols & 7) == 0;
  const capacity = tileCapacity(cols);
  const xs = xtStride(batch);
  let count: usize = 0, tileRows = 0, o0 = r0;
  store<u32>(scratch, 0);
  for (let o = r0; o < r1; o++) {
    if (tileRows == TILE_ROWS || count + slotsPerRow > capacity) {
      runTile(scratch, capacity, tileRows, o0, xt, y, rows, batch);
      count = 0; tileRows = 0; o0 = o;
    }
    let slot = <usize>o * slotsPerRow;
    if (fast24) {
      // One byte holds the positions of two groups; zeros in slots are kept (they add nothing).
      tileValues<V>(scratch, capacity, count, values + slot * sizeof<V>(), slotsPerRow);
      const offs = scratch + TILE_STARTS_BYTES + (count << 2);
      for (let j: usize = 0; j < slotsPerRow; j += 4) {
        const p = <u32>load<u8>(indices + ((slot + j) >> 2));
        const c = <u32>(j << 1);
        store<u32>(offs + (j << 2), (c + (p & 3)) * xs);
        store<u32>(offs + (j << 2), (c + ((p >> 2) & 3)) * xs, 4);
        store<u32>(offs + (j << 2), (c + 4 + ((p >> 4) & 3)) * xs, 8);
        store<u32>(offs + (j << 2), (c + 4 + (p >> 6)) * xs, 12);
      }
      count += slotsPerRow;
      store<u32>(scratch + (<usize>++tileRows << 2), <u32>count);
      continue;
    }
    for (let g = 0; g < groups; g++) {
      for (let s = 0; s < n; s++) {
        const v = value<V>(values, slot);
        if (v != 0) tileEntry(scratch, capacity, count++, <u32>(g * m) + <u32>position(indices, slot, bits, mask), xs, v);
        slot++;
      }
    }
    store<u32>(scratch + (<usize>++tileRows << 2), <u32>count);
  }
  if (tileRows > 0) runTile(scratch, capacity, tileRows, o0, xt, y, rows, batch);
}

function nmLinear<V>(
  values: usize, indices: usize, n: i32, m: i32, bits: i32, xt: usize, y: usize, rows: i32, cols: i32, batch: i32,
  r0: i32, r1: i32, scratch: usize,
): void {
  const groups = cols / m;
  const slotsPerRow = <usize>(groups * n);
  const mask: u32 = (1 << bits) - 1;
  const fast24 = n == 2 && m == 4 && (cols & 7) == 0;
  if (batch > 1) {
    nmTiles<V>(values, indices, n, m, bits, xt, y, rows, cols, batch, r0, r1, scratch);
    return;
  }
  for (let o = r0; o < r1; o++) {
    const first = <usize>o * slotsPerRow;
    if (fast24) {
      store<f32>(y + (<usize>o << 2), dot24<V>(values + first * sizeof<V>(), indices + (first >> 2), xt, <usize>cols));
      continue;
    }
    let s0: f32 = 0;
    let slot = first;
    for (let g = 0; g < groups; g++) {
      const xg = xt + ((<usize>g * <usize>m) << 2);
      for (let s = 0; s < n; s++) {
        s0 += value<V>(values, slot) * load<f32>(xg + (position(indices, slot, bits, mask) << 2));
        slot++;
      }
    }
    store<f32>(y + (<usize>o << 2), s0);
  }
}

export function nm_linear_f32(values: usize, indices: usize, n: i32, m: i32, bits: i32, xt: usize, y: usize, rows: i32, cols: i32, batch: i32, r0: i32, r1: i32, scratch: usize): void {
  nmLinear<f32>(values, indices, n, m, bits, xt, y, rows, cols, batch, r0, r1, scratch);
}
export function nm_linear_f16(values: usize, indices: usize, n: i32, m: i32, bits: i32, xt: usize, y: usize, rows: i32, cols: i32, batch: i32, r0: i32, r1: i32, scratch: usize): void {
  nmLinear<u16>(values, indices, n, m, bits, xt, y, rows, cols, batch, r0, r1, scratch);
}

// ---------------------------------------------------------------------------------------------
// Bitmask: row o's bits start at bitmask + o * ceil(cols / 8), its values at rowOffsets[o]. Rows are
// read 64 bits at a time (the host pads the mask with 8 bytes); bits past the row are masked off.

function bitmaskLinear<V>(
  bitmask: usize, rowOffsets: usize, values: usize, xt: usize, y: usize, rows: i32, cols: i32, batch: i32,
  r0: i32, r1: i32, scratch: usize,
): void {
  const rowBytes = <usize>((cols + 7) >> 3);
  const capacity = tileCapacity(cols);
  const xs = xtStride(batch);
  let count: usize = 0, tileRows = 0, o0 = r0;
  store<u32>(scratch, 0);
  for (let o = r0; o < r1; o++) {
    const bits = bitmask + <usize>o * rowBytes;
    const k0 = <usize>load<i32>(rowOffsets + (<usize>o << 2));
    if (batch == 1) {
      // Decode the row's columns into scratch; gatherDot reads column k - k0 there for value k.
      let n: usize = 0;
      for (let byte: usize = 0; byte < rowBytes; byte += 8) {
        let word = maskWord(bits, byte, rowBytes);
        const c0 = <u32>(byte << 3);
        while (word != 0) {
          store<u32>(scratch + (n++ << 2), c0 + <u32>ctz(word));
          word &= word - 1;
        }
      }
      store<f32>(y + (<usize>o << 2), gatherDot<u32, V>(scratch - (k0 << 2), values, k0, k0 + n, xt));
      continue;
    }
    if (tileRows == TILE_ROWS || count + <usize>cols > capacity) {
      runTile(scratch, capacity, tileRows, o0, xt, y, rows, batch);
      count = 0; tileRows = 0; o0 = o;
    }
    let k = k0;
    for (let byte: usize = 0; byte < rowBytes; byte += 8) {
      let word = maskWord(bits, byte, rowBytes);
      const c0 = <u32>(byte << 3);
      while (word != 0) {
        tileEntry(scratch, capacity, count++, c0 + <u32>ctz(word), xs, value<V>(values, k++));
        word &= word - 1;
      }
    }
    store<u32>(scratch + (<usize>++tileRows << 2), <u32>count);
  }
  if (tileRows > 0) runTile(scratch, capacity, tileRows, o0, xt, y, rows, batch);
}

// 64 bits of a row's mask from byte `byte`; bits past the row's end are cleared.
// @ts-ignore: decorator
@inline function maskWord(bits: usize, byte: usize, rowBytes: usize): u64 {
  const word = load<u64>(bits + byte);
  const left = rowBytes - byte;
  return left < 8 ? word & ((<u64>1 << (<u64>left << 3)) - 1) : word;
}

export function bitmask_linear_f32(bitmask: usize, rowOffsets: usize, values: usize, xt: usize, y: usize, rows: i32, cols: i32, batch: i32, r0: i32, r1: i32, scratch: usize): void {
  bitmaskLinear<f32>(bitmask, rowOffsets, values, xt, y, rows, cols, batch, r0, r1, scratch);
}
export function bitmask_linear_f16(bitmask: usize, rowOffsets: usize, values: usize, xt: usize, y: usize, rows: i32, cols: i32, batch: i32, r0: i32, r1: i32, scratch: usize): void {
  bitmaskLinear<u16>(bitmask, rowOffsets, values, xt, y, rows, cols, batch, r0, r1, scratch);
}

// ---------------------------------------------------------------------------------------------
// BSR with R x C blocks: block rows [r0, r1) (in units of block rows). x is [batch, cols].
// Each block row's R output rows are zeroed, then every block adds its R dot products of length C.

function bsrLinear<I, V>(
  indptr: usize, indices: usize, values: usize, x: usize, y: usize, rows: i32, cols: i32, R: i32, C: i32,
  batch: i32, r0: i32, r1: i32,
): void {
  // Each output row (block row br, row r of its blocks) keeps two SIMD sums over all its blocks and
  // reduces them once at the end: a kept block of C inputs is C / 4 contiguous loads of x and of
  // values, with no per-block horizontal sum.
  if (C == 1 && (R & 3) == 0) return bsrTall<I, V>(indptr, indices, values, x, y, rows, cols, R, batch, r0, r1);
  const c4 = C & ~3;
  const c8 = C & ~7;
  const blockSize = <usize>(R * C);
  for (let br = r0; br < r1; br++) {
    const k0 = <usize>load<i32>(indptr + (<usize>br << 2));
    const k1 = <usize>load<i32>(indptr + (<usize>(br + 1) << 2));
    for (let r = 0; r < R; r++) {
      for (let b = 0; b < batch; b++) {
        const xrow = x + ((<usize>b * <usize>cols) << 2);
        let acc0 = f32x4.splat(0);
        let acc1 = f32x4.splat(0);
        let s: f32 = 0;
        for (let k = k0; k < k1; k++) {
          const xb = xrow + ((index<I>(indices, k) * <usize>C) << 2);
          const wr = k * blockSize + <usize>(r * C);
          let c = 0;
          for (; c < c8; c += 8) {
            acc0 = f32x4.add(acc0, f32x4.mul(value4<V>(values, wr + c), v128.load(xb + (<usize>c << 2))));
            acc1 = f32x4.add(acc1, f32x4.mul(value4<V>(values, wr + c + 4), v128.load(xb + (<usize>(c + 4) << 2))));
          }
          for (; c < c4; c += 4) acc0 = f32x4.add(acc0, f32x4.mul(value4<V>(values, wr + c), v128.load(xb + (<usize>c << 2))));
          for (; c < C; c++) s += value<V>(values, wr + c) * load<f32>(xb + (<usize>c << 2));
        }
        store<f32>(y + ((<usize>b * <usize>rows + <usize>(br * R + r)) << 2), hsum(f32x4.add(acc0, acc1)) + s);
      }
    }
  }
}

// R x 1 blocks (R a multiple of 4, along the outputs): a block is R consecutive outputs of one input,
// so it adds x[input] times R / 4 vectors of values to sums that each hold 4 outputs; two blocks per
// step on independent sums.
function bsrTall<I, V>(
  indptr: usize, indices: usize, values: usize, x: usize, y: usize, rows: i32, cols: i32, R: i32,
  batch: i32, r0: i32, r1: i32,
): void {
  for (let br = r0; br < r1; br++) {
    const k0 = <usize>load<i32>(indptr + (<usize>br << 2));
    const k1 = <usize>load<i32>(indptr + (<usize>(br + 1) << 2));
    for (let b = 0; b < batch; b++) {
      const xrow = x + ((<usize>b * <usize>cols) << 2);
      for (let r = 0; r < R; r += 4) {
        let acc0 = f32x4.splat(0);
        let acc1 = f32x4.splat(0);
        let k = k0;
        for (; k + 2 <= k1; k += 2) {
          const x0 = f32x4.splat(load<f32>(xrow + (index<I>(indices, k) << 2)));
          const x1 = f32x4.splat(load<f32>(xrow + (index<I>(indices, k + 1) << 2)));
          acc0 = f32x4.add(acc0, f32x4.mul(value4<V>(values, k * <usize>R + <usize>r), x0));
          acc1 = f32x4.add(acc1, f32x4.mul(value4<V>(values, (k + 1) * <usize>R + <usize>r), x1));
        }
        if (k < k1) {
          const x0 = f32x4.splat(load<f32>(xrow + (index<I>(indices, k) << 2)));
          acc0 = f32x4.add(acc0, f32x4.mul(value4<V>(values, k * <usize>R + <usize>r), x0));
        }
        v128.store(y + ((<usize>b * <usize>rows + <usize>(br * R + r)) << 2), f32x4.add(acc0, acc1));
      }
    }
  }
}

export function bsr_linear_i32_f32(indptr: usize, indices: usize, values: usize, x: usize, y: usize, rows: i32, cols: i32, R: i32, C: i32, batch: i32, r0: i32, r1: i32): void {
  bsrLinear<i32, f32>(indptr, indices, values, x, y, rows, cols, R, C, batch, r0, r1);
}
export function bsr_linear_u16_f32(indptr: usize, indices: usize, values: usize, x: usize, y: usize, rows: i32, cols: i32, R: i32, C: i32, batch: i32, r0: i32, r1: i32): void {
  bsrLinear<u16, f32>(indptr, indices, values, x, y, rows, cols, R, C, batch, r0, r1);
}
export function bsr_linear_i32_f16(indptr: usize, indices: usize, values: usize, x: usize, y: usize, rows: i32, cols: i32, R: i32, C: i32, batch: i32, r0: i32, r1: i32): void {
  bsrLinear<i32, u16>(indptr, indices, values, x, y, rows, cols, R, C, batch, r0, r1);
}
export function bsr_linear_u16_f16(indptr: usize, indices: usize, values: usize, x: usize, y: usize, rows: i32, cols: i32, R: i32, C: i32, batch: i32, r0: i32, r1: i32): void {
  bsrLinear<u16, u16>(indptr, indices, values, x, y, rows, cols, R, C, batch, r0, r1);
}

// ---------------------------------------------------------------------------------------------
// Column-gather GEMV (activation sparsity at batch 1): for o in [r0, r1),
//   y[o] = bias[o] + sum_k xa[k] * W[o, active[k]],   xa[k] = x[active[k]] (the host compacts x).
// wt is W^T, i.e. W column-major: column c of W is the contiguous run wt + c * ld elements (ld >= rows,
// a multiple of 32, zero padded), so only the active columns are read, each as one stream.
// Active columns go 4 at a time (each y vector is loaded and stored once per 4 columns, and 4 column
// streams are in flight), 8 rows (two f32x4) per step. Rows go in tiles of GATHER_TILE, sized so that
// the y tile stays in L2 (128 KiB): measured on 4096 x 11008 and 11008 x 4096 (one thread, weights
// beyond the last-level cache), tiles of 1024-4096 rows (y in L1) were 1.2-1.7x slower than one long
// tile, since every tile restarts every active column's memory stream (and the prefetcher's ramp-up
// with it), while y hits in L2 cost little. Groups of 8 columns were no faster than 4. The row range
// is rounded up to 8 rows: the host pads y, bias and wt. bias 0: none.
//
// f16 values (bits as u16) are not decoded to their f32 value but to the f32 whose bits are
// sign | 000 | exponent | mantissa | 0...: exactly h * 2^-112 (a normal f32 for a normal half, zero
// for zero), in three integer operations per 4 values (interleave with zero, arithmetic shift right
// by 3, and). The factor 2^112 goes into the x value: (h 2^-112)(x 2^112) rounds exactly as h x, and
// x 2^112 is exact for |x| < 2^16; a group of columns with a larger or non-finite x runs on exactly
// decoded values instead (half4). A subnormal half would become a subnormal f32 (a microcode assist
// on x86 when multiplied), so the host keeps subnormal halves out of wt: they are zero there and
// added from a per-column side list after the columns (gatherSubnormals).

const GATHER_TILE: i32 = 32768;
const TWO_POW_112: f32 = 5.192296858534828e33;

// Halves 0-3 (low) or 4-7 (high) of 8 f16 bits as h * 2^-112 (f32x4). Constant slot 7: 0x8fffffff.
// @ts-ignore: decorator
@inline function halfScaledLow(h8: v128): v128 {
  return v128.and(i32x4.shr_s(v128.shuffle<i16>(k(6), h8, 0, 8, 1, 9, 2, 10, 3, 11), 3), k(7));
}
// @ts-ignore: decorator
@inline function halfScaledHigh(h8: v128): v128 {
  return v128.and(i32x4.shr_s(v128.shuffle<i16>(k(6), h8, 4, 12, 5, 13, 6, 14, 7, 15), 3), k(7));
}

// 8 weights of one column from p as two f32x4 (f16: scaled by 2^-112).
// @ts-ignore: decorator
@inline function weightsLow<V>(p: usize): v128 {
  if (sizeof<V>() == 4) return v128.load(p);
  return halfScaledLow(v128.load(p));
}
// @ts-ignore: decorator
@inline function weightsHigh<V>(p: usize): v128 {
  if (sizeof<V>() == 4) return v128.load(p, 16);
  return halfScaledHigh(v128.load(p));
}

// y[i .. i + 8) += the 4 columns at p0..p3 times x0..x3, for every 8 rows of [0, n).
// @ts-ignore: decorator
@inline function gatherRows4<V>(
  y: usize, p0: usize, p1: usize, p2: usize, p3: usize, n: usize, x0: v128, x1: v128, x2: v128, x3: v128,
): void {
  for (let i: usize = 0; i < n; i += 8) {
    const e = i * sizeof<V>();
    const lo = f32x4.add(
      f32x4.add(f32x4.mul(weightsLow<V>(p0 + e), x0), f32x4.mul(weightsLow<V>(p1 + e), x1)),
      f32x4.add(f32x4.mul(weightsLow<V>(p2 + e), x2), f32x4.mul(weightsLow<V>(p3 + e), x3)),
    );
    const hi = f32x4.add(
      f32x4.add(f32x4.mul(weightsHigh<V>(p0 + e), x0), f32x4.mul(weightsHigh<V>(p1 + e), x1)),
      f32x4.add(f32x4.mul(weightsHigh<V>(p2 + e), x2), f32x4.mul(weightsHigh<V>(p3 + e), x3)),
    );
    const yp = y + (i << 2);
    v128.store(yp, f32x4.add(v128.load(yp), lo));
    v128.store(yp, f32x4.add(v128.load(yp, 16), hi), 16);
  }
}

// @ts-ignore: decorator
@inline function gatherRows1<V>(y: usize, p0: usize, n: usize, x0: v128): void {
  for (let i: usize = 0; i < n; i += 8) {
    const e = i * sizeof<V>();
    const yp = y + (i << 2);
    v128.store(yp, f32x4.add(v128.load(yp), f32x4.mul(weightsLow<V>(p0 + e), x0)));
    v128.store(yp, f32x4.add(v128.load(yp, 16), f32x4.mul(weightsHigh<V>(p0 + e), x0)), 16);
  }
}

// One f16 column with its exact f32 values (half4), for an x too large to carry the 2^112 factor.
// Kept out of line so that the fast loops stay free of it.
function gatherColumnExact(y: usize, p: usize, n: usize, x: f32): void {
  const xv = f32x4.splat(x);
  for (let i: usize = 0; i < n; i += 4) {
    const yp = y + (i << 2);
    v128.store(yp, f32x4.add(v128.load(yp), f32x4.mul(half4(v128.load16x4_u(p + (i << 1))), xv)));
  }
}

// @ts-ignore: decorator
@inline function fitsScaled(x: f32): bool {
  return abs(x) < 65536; // false for NaN
}

// Subnormal halves (zero in wt): column c's are entries [starts[c], starts[c + 1]) of `rows` (i32,
// ascending) and `values` (f32); y[row] += x * value for the active columns' rows in [r0, r1).
function gatherSubnormals(
  starts: usize, rows: usize, values: usize, xa: usize, active: usize, count: i32, y: usize, r0: i32, r1: i32,
): void {
  for (let k = 0; k < count; k++) {
    const c = <usize>load<i32>(active + (<usize>k << 2));
    const e1 = <usize>load<i32>(starts + (c << 2), 4);
    let e = <usize>load<i32>(starts + (c << 2));
    if (e == e1) continue;
    const x = load<f32>(xa + (<usize>k << 2));
    for (; e < e1; e++) {
      const r = load<i32>(rows + (e << 2));
      if (r >= r1) break;
      if (r >= r0) {
        const yp = y + (<usize>r << 2);
        store<f32>(yp, load<f32>(yp) + x * load<f32>(values + (e << 2)));
      }
    }
  }
}

function gatherGemv<V>(
  wt: usize, ld: i32, xa: usize, active: usize, count: i32, bias: usize, y: usize, r0: i32, r1: i32,
  subStarts: usize, subRows: usize, subValues: usize,
): void {
  const end = (r1 + 7) & ~7;
  const columnBytes = <usize>ld * sizeof<V>();
  const n4 = count & ~3;
  for (let t0 = r0; t0 < end; t0 += GATHER_TILE) {
    const n = <usize>(min(t0 + GATHER_TILE, end) - t0);
    const yt = y + (<usize>t0 << 2);
    if (bias != 0) memory.copy(yt, bias + (<usize>t0 << 2), n << 2);
    else memory.fill(yt, 0, n << 2);
    const first = <usize>t0 * sizeof<V>();
    for (let k = 0; k < n4; k += 4) {
      const ap = active + (<usize>k << 2);
      const p0 = wt + <usize>load<i32>(ap) * columnBytes + first;
      const p1 = wt + <usize>load<i32>(ap, 4) * columnBytes + first;
      const p2 = wt + <usize>load<i32>(ap, 8) * columnBytes + first;
      const p3 = wt + <usize>load<i32>(ap, 12) * columnBytes + first;
      const xp = xa + (<usize>k << 2);
      let s0 = load<f32>(xp), s1 = load<f32>(xp, 4), s2 = load<f32>(xp, 8), s3 = load<f32>(xp, 12);
      if (sizeof<V>() == 2) {
        if (!(fitsScaled(s0) && fitsScaled(s1) && fitsScaled(s2) && fitsScaled(s3))) {
          gatherColumnExact(yt, p0, n, s0);
          gatherColumnExact(yt, p1, n, s1);
          gatherColumnExact(yt, p2, n, s2);
          gatherColumnExact(yt, p3, n, s3);
          continue;
        }
        s0 *= TWO_POW_112; s1 *= TWO_POW_112; s2 *= TWO_POW_112; s3 *= TWO_POW_112;
      }
      gatherRows4<V>(yt, p0, p1, p2, p3, n, f32x4.splat(s0), f32x4.splat(s1), f32x4.splat(s2), f32x4.splat(s3));
    }
    for (let k = n4; k < count; k++) {
      const p0 = wt + <usize>load<i32>(active + (<usize>k << 2)) * columnBytes + first;
      let s0 = load<f32>(xa + (<usize>k << 2));
      if (sizeof<V>() == 2) {
        if (!fitsScaled(s0)) {
          gatherColumnExact(yt, p0, n, s0);
          continue;
        }
        s0 *= TWO_POW_112;
      }
      gatherRows1<V>(yt, p0, n, f32x4.splat(s0));
    }
  }
  if (subStarts != 0) gatherSubnormals(subStarts, subRows, subValues, xa, active, count, y, r0, r1);
}

export function gather_gemv_f32(wt: usize, ld: i32, xa: usize, active: usize, count: i32, bias: usize, y: usize, r0: i32, r1: i32): void {
  gatherGemv<f32>(wt, ld, xa, active, count, bias, y, r0, r1, 0, 0, 0);
}
// Split by columns instead of rows (what the host does when enough columns are active): this thread
// adds the active columns [k0, k1) over every row into its own partial y (`partial`; the bias goes
// into the first thread's, the one at y0), so that each column is read as one run of `rows`
// elements, where a row split would cut it into one shorter run per thread (measured 10-20% slower
// at 0-50% sparsity on 2 threads); gather_reduce then sums the partials.
export function gather_gemv_columns_f32(
  wt: usize, ld: i32, xa: usize, active: usize, rows: i32, bias: usize, y0: usize, partial: usize, k0: i32, k1: i32,
): void {
  const at = <usize>k0 << 2;
  gatherGemv<f32>(wt, ld, xa + at, active + at, k1 - k0, partial == y0 ? bias : 0, partial, 0, rows, 0, 0, 0);
}
export function gather_gemv_columns_f16(
  wt: usize, ld: i32, xa: usize, active: usize, rows: i32, bias: usize, y0: usize, partial: usize, k0: i32, k1: i32,
  subStarts: usize, subRows: usize, subValues: usize,
): void {
  const at = <usize>k0 << 2;
  gatherGemv<u16>(
    wt, ld, xa + at, active + at, k1 - k0, partial == y0 ? bias : 0, partial, 0, rows, subStarts, subRows, subValues,
  );
}

// y[r] += partial p's y[r] for p in [1, parts), partials `stride` bytes apart after y; r in [r0, r1)
// rounded up to 4.
export function gather_reduce(y: usize, stride: i32, parts: i32, r0: i32, r1: i32): void {
  const end = (r1 + 3) & ~3;
  for (let r = r0; r < end; r += 4) {
    const yp = y + (<usize>r << 2);
    let acc = v128.load(yp);
    for (let p = 1; p < parts; p++) acc = f32x4.add(acc, v128.load(yp + <usize>p * <usize>stride));
    v128.store(yp, acc);
  }
}

// subStarts 0: the matrix has no subnormal halves.
export function gather_gemv_f16(
  wt: usize, ld: i32, xa: usize, active: usize, count: i32, bias: usize, y: usize, r0: i32, r1: i32,
  subStarts: usize, subRows: usize, subValues: usize,
): void {
  gatherGemv<u16>(wt, ld, xa, active, count, bias, y, r0, r1, subStarts, subRows, subValues);
}

// ---------------------------------------------------------------------------------------------
// dst = src^T for the gather kernels: src [n, m] (rows ss bytes apart) -> dst [m, n] (rows ds bytes
// apart), for src columns [c0, c1); 4 x 4 blocks are transposed in registers.

export function transpose(src: usize, dst: usize, n: i32, m: i32, ss: i32, ds: i32, c0: i32, c1: i32): void {
  const rs = <usize>ss, ts = <usize>ds;
  const n4 = n & ~3;
  let c = c0;
  for (; c + 4 <= c1; c += 4) {
    for (let b = 0; b < n4; b += 4) {
      const from = src + <usize>b * rs + (<usize>c << 2);
      const r0 = v128.load(from), r1 = v128.load(from + rs), r2 = v128.load(from + 2 * rs), r3 = v128.load(from + 3 * rs);
      const t0 = v128.shuffle<i32>(r0, r1, 0, 4, 1, 5);
      const t1 = v128.shuffle<i32>(r0, r1, 2, 6, 3, 7);
      const t2 = v128.shuffle<i32>(r2, r3, 0, 4, 1, 5);
      const t3 = v128.shuffle<i32>(r2, r3, 2, 6, 3, 7);
      const to = dst + <usize>c * ts + (<usize>b << 2);
      v128.store(to, v128.shuffle<i32>(t0, t2, 0, 1, 4, 5));
      v128.store(to + ts, v128.shuffle<i32>(t0, t2, 2, 3, 6, 7));
      v128.store(to + 2 * ts, v128.shuffle<i32>(t1, t3, 0, 1, 4, 5));
      v128.store(to + 3 * ts, v128.shuffle<i32>(t1, t3, 2, 3, 6, 7));
    }
    for (let b = n4; b < n; b++) {
      for (let j = 0; j < 4; j++) {
        store<f32>(dst + <usize>(c + j) * ts + (<usize>b << 2), load<f32>(src + <usize>b * rs + (<usize>(c + j) << 2)));
      }
    }
  }
  for (; c < c1; c++) {
    for (let b = 0; b < n; b++) store<f32>(dst + <usize>c * ts + (<usize>b << 2), load<f32>(src + <usize>b * rs + (<usize>c << 2)));
  }
}

// ---------------------------------------------------------------------------------------------
// Memory bandwidth probe (STREAM triad): a[i] = b[i] + s * c[i] over [i0, i1).

export function triad(a: usize, b: usize, c: usize, s: f32, i0: i32, i1: i32): void {
  const vs = f32x4.splat(s);
  let i = <usize>i0;
  const end = <usize>i1;
  for (; i + 4 <= end; i += 4) {
    const o = i << 2;
    v128.store(a + o, f32x4.add(v128.load(b + o), f32x4.mul(vs, v128.load(c + o))));
  }
  for (; i < end; i++) store<f32>(a + (i << 2), load<f32>(b + (i << 2)) + s * load<f32>(c + (i << 2)));
}

// ---------------------------------------------------------------------------------------------
// Attention that reads only the keys it is given: see attention.ts.
export { attend_rows_f32, attend_blocks_f32 } from './attention';
