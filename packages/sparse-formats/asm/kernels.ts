// Sparse and dense kernels for y = x W^T, compiled by AssemblyScript to wasm with SIMD.
// Pointers are byte offsets into the (shared) memory the host provides; nothing here allocates.
// Every kernel computes output rows [r0, r1) of W, so threads can split the work by rows.
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
// Slots: 0 0x8000, 1 0x7fff, 2 0x7c00, 3 0x38000000, 4 0x00800000, 5 2^-14 (f32), 6 zero.

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

// @ts-ignore: decorator
@inline function hsum(v: v128): f32 {
  return f32x4.extract_lane(v, 0) + f32x4.extract_lane(v, 1) + f32x4.extract_lane(v, 2) + f32x4.extract_lane(v, 3);
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

// @ts-ignore: decorator
@inline function gather4<I>(indices: usize, k: usize, xt: usize): v128 {
  let g = v128.load32_zero(xt + (index<I>(indices, k) << 2));
  g = v128.load32_lane(xt + (index<I>(indices, k + 1) << 2), g, 1);
  g = v128.load32_lane(xt + (index<I>(indices, k + 2) << 2), g, 2);
  return v128.load32_lane(xt + (index<I>(indices, k + 3) << 2), g, 3);
}

function gatherDot<I, V>(indices: usize, values: usize, k0: usize, k1: usize, xt: usize): f32 {
  let a0 = f32x4.splat(0), a1 = f32x4.splat(0);
  let k = k0;
  for (; k + 8 <= k1; k += 8) {
    let v0: v128, v1: v128;
    if (sizeof<V>() == 2) {
      const h = v128.load(values + (k << 1));
      v0 = half4(i32x4.extend_low_i16x8_u(h));
      v1 = half4(i32x4.extend_high_i16x8_u(h));
    } else {
      v0 = v128.load(values + (k << 2));
      v1 = v128.load(values + (k << 2), 16);
    }
    a0 = f32x4.add(a0, f32x4.mul(v0, gather4<I>(indices, k, xt)));
    a1 = f32x4.add(a1, f32x4.mul(v1, gather4<I>(indices, k + 4, xt)));
  }
  let s = hsum(f32x4.add(a0, a1));
  for (; k < k1; k++) s += value<V>(values, k) * load<f32>(xt + (index<I>(indices, k) << 2));
  return s;
}

// ---------------------------------------------------------------------------------------------
// Wide batches: a row's nonzeros are first decoded into scratch (u32 columns, f32 values), then
// one shared routine runs 16, 4 and single lanes of the batch over them.

function laneRow(cols: usize, vals: usize, count: usize, xt: usize, y: usize, rows: i32, batch: i32, o: i32): void {
  const xs = <usize>batch << 2;
  let b = 0;
  for (; b + 16 <= batch; b += 16) {
    let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
    const xb = xt + (<usize>b << 2);
    for (let k: usize = 0; k < count; k++) {
      const v = v128.load32_splat(vals + (k << 2));
      const p = xb + <usize>load<u32>(cols + (k << 2)) * xs;
      a0 = f32x4.add(a0, f32x4.mul(v, v128.load(p)));
      a1 = f32x4.add(a1, f32x4.mul(v, v128.load(p, 16)));
      a2 = f32x4.add(a2, f32x4.mul(v, v128.load(p, 32)));
      a3 = f32x4.add(a3, f32x4.mul(v, v128.load(p, 48)));
    }
    storeLanes(y, rows, o, b, a0);
    storeLanes(y, rows, o, b + 4, a1);
    storeLanes(y, rows, o, b + 8, a2);
    storeLanes(y, rows, o, b + 12, a3);
  }
  for (; b + 4 <= batch; b += 4) {
    let a0 = f32x4.splat(0);
    const xb = xt + (<usize>b << 2);
    for (let k: usize = 0; k < count; k++) {
      a0 = f32x4.add(a0, f32x4.mul(v128.load32_splat(vals + (k << 2)), v128.load(xb + <usize>load<u32>(cols + (k << 2)) * xs)));
    }
    storeLanes(y, rows, o, b, a0);
  }
  for (; b < batch; b++) {
    let s: f32 = 0;
    const xb = xt + (<usize>b << 2);
    for (let k: usize = 0; k < count; k++) s += load<f32>(vals + (k << 2)) * load<f32>(xb + <usize>load<u32>(cols + (k << 2)) * xs);
    store<f32>(y + ((<usize>b * <usize>rows + <usize>o) << 2), s);
  }
}

// CSR: indptr i32 [rows + 1], indices I (u16 or i32), values V. Wide batches decode the row into
// scratch and share laneRow with N:M and bitmask.
function csrLinear<I, V>(
  indptr: usize, indices: usize, values: usize, xt: usize, y: usize, rows: i32, batch: i32, r0: i32, r1: i32,
  scratch: usize,
): void {
  for (let o = r0; o < r1; o++) {
    const k0 = <usize>load<i32>(indptr + (<usize>o << 2));
    const k1 = <usize>load<i32>(indptr + (<usize>(o + 1) << 2));
    if (batch == 1) {
      store<f32>(y + (<usize>o << 2), gatherDot<I, V>(indices, values, k0, k1, xt));
      continue;
    }
    const count = k1 - k0;
    const scratchVals = scratch + (count << 2);
    for (let k: usize = 0; k < count; k++) {
      store<u32>(scratch + (k << 2), <u32>index<I>(indices, k0 + k));
      store<f32>(scratchVals + (k << 2), value<V>(values, k0 + k));
    }
    laneRow(scratch, scratchVals, count, xt, y, rows, batch, o);
  }
}

export function csr_linear_i32_f32(indptr: usize, indices: usize, values: usize, xt: usize, y: usize, rows: i32, batch: i32, r0: i32, r1: i32, scratch: usize): void {
  csrLinear<i32, f32>(indptr, indices, values, xt, y, rows, batch, r0, r1, scratch);
}
export function csr_linear_u16_f32(indptr: usize, indices: usize, values: usize, xt: usize, y: usize, rows: i32, batch: i32, r0: i32, r1: i32, scratch: usize): void {
  csrLinear<u16, f32>(indptr, indices, values, xt, y, rows, batch, r0, r1, scratch);
}
export function csr_linear_i32_f16(indptr: usize, indices: usize, values: usize, xt: usize, y: usize, rows: i32, batch: i32, r0: i32, r1: i32, scratch: usize): void {
  csrLinear<i32, u16>(indptr, indices, values, xt, y, rows, batch, r0, r1, scratch);
}
export function csr_linear_u16_f16(indptr: usize, indices: usize, values: usize, xt: usize, y: usize, rows: i32, batch: i32, r0: i32, r1: i32, scratch: usize): void {
  csrLinear<u16, u16>(indptr, indices, values, xt, y, rows, batch, r0, r1, scratch);
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

function nmLinear<V>(
  values: usize, indices: usize, n: i32, m: i32, bits: i32, xt: usize, y: usize, rows: i32, cols: i32, batch: i32,
  r0: i32, r1: i32, scratch: usize,
): void {
  const groups = cols / m;
  const slotsPerRow = <usize>(groups * n);
  const mask: u32 = (1 << bits) - 1;
  const fast24 = n == 2 && m == 4 && (cols & 7) == 0;
  const scratchVals = scratch + (<usize>cols << 2);
  for (let o = r0; o < r1; o++) {
    const first = <usize>o * slotsPerRow;
    if (batch == 1) {
      let s0: f32 = 0, s1: f32 = 0, s2: f32 = 0, s3: f32 = 0;
      if (fast24) {
        store<f32>(y + (<usize>o << 2), dot24<V>(values + first * sizeof<V>(), indices + (first >> 2), xt, <usize>cols));
        continue;
      } else {
        let slot = first;
        for (let g = 0; g < groups; g++) {
          const xg = xt + ((<usize>g * <usize>m) << 2);
          for (let s = 0; s < n; s++) {
            s0 += value<V>(values, slot) * load<f32>(xg + (position(indices, slot, bits, mask) << 2));
            slot++;
          }
        }
      }
      store<f32>(y + (<usize>o << 2), (s0 + s1) + (s2 + s3));
      continue;
    }
    let count: usize = 0;
    let slot = first;
    for (let g = 0; g < groups; g++) {
      for (let s = 0; s < n; s++) {
        const v = value<V>(values, slot);
        if (v != 0) {
          store<u32>(scratch + (count << 2), <u32>(g * m) + <u32>position(indices, slot, bits, mask));
          store<f32>(scratchVals + (count << 2), v);
          count++;
        }
        slot++;
      }
    }
    laneRow(scratch, scratchVals, count, xt, y, rows, batch, o);
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
  const scratchVals = scratch + (<usize>cols << 2);
  for (let o = r0; o < r1; o++) {
    const bits = bitmask + <usize>o * rowBytes;
    const k0 = <usize>load<i32>(rowOffsets + (<usize>o << 2));
    let count: usize = 0;
    for (let byte: usize = 0; byte < rowBytes; byte += 8) {
      let word = load<u64>(bits + byte);
      const left = rowBytes - byte;
      if (left < 8) word &= (<u64>1 << (<u64>left << 3)) - 1;
      const c0 = <u32>(byte << 3);
      while (word != 0) {
        store<u32>(scratch + (count << 2), c0 + <u32>ctz(word));
        word &= word - 1;
        count++;
      }
    }
    if (batch == 1) {
      // gatherDot reads column k - k0 from scratch for value k.
      store<f32>(y + (<usize>o << 2), gatherDot<u32, V>(scratch - (k0 << 2), values, k0, k0 + count, xt));
      continue;
    }
    for (let k: usize = 0; k < count; k++) store<f32>(scratchVals + (k << 2), value<V>(values, k0 + k));
    laneRow(scratch, scratchVals, count, xt, y, rows, batch, o);
  }
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
  const c4 = C & ~3;
  const blockSize = <usize>(R * C);
  for (let br = r0; br < r1; br++) {
    const k0 = <usize>load<i32>(indptr + (<usize>br << 2));
    const k1 = <usize>load<i32>(indptr + (<usize>(br + 1) << 2));
    for (let b = 0; b < batch; b++) {
      const yb = y + ((<usize>b * <usize>rows + <usize>(br * R)) << 2);
      memory.fill(yb, 0, <usize>R << 2);
    }
    for (let k = k0; k < k1; k++) {
      const col0 = index<I>(indices, k) * <usize>C;
      const block = k * blockSize;
      for (let r = 0; r < R; r++) {
        const wr = block + <usize>(r * C);
        for (let b = 0; b < batch; b++) {
          const xb = x + ((<usize>b * <usize>cols + col0) << 2);
          let acc = f32x4.splat(0);
          for (let c = 0; c < c4; c += 4) acc = f32x4.add(acc, f32x4.mul(value4<V>(values, wr + c), v128.load(xb + (<usize>c << 2))));
          let s = hsum(acc);
          for (let c = c4; c < C; c++) s += value<V>(values, wr + c) * load<f32>(xb + (<usize>c << 2));
          const yp = y + ((<usize>b * <usize>rows + <usize>(br * R + r)) << 2);
          store<f32>(yp, load<f32>(yp) + s);
        }
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
