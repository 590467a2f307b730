// Softmax attention kernels that read only the keys they are given (SIMD f32, online softmax).
// Queries arrive already multiplied by the score scale. headDim must be a multiple of 4.
//
// - attend_rows: one query token per head of a group (decode). The keys read are a list of row
//   indices (a page or token selection, or every row); threads split the list and each leaves a
//   partial softmax (running max, sum and weighted values per head) that the host merges.
// - attend_blocks: many query tokens (prefill). Work items are (head, query block) pairs; each reads
//   only the key blocks listed for its query block, with causality, a window and sinks applied
//   inside the blocks element by element.

import { hsum } from './simd';

// Scores per head of a tile of keys (attend_rows) and the key-block edge limit (attend_blocks).
const TILE: i32 = 64;

// e^x for x <= 0 (scores minus their running max), four lanes: Cody-Waite range reduction and
// Cephes' degree-5 polynomial (relative error ~2e-7); inputs below -87 give ~1e-38, not 0.
// @ts-ignore: decorator
@inline function exp4(x: v128): v128 {
  const c = f32x4.max(x, f32x4.splat(-87.0));
  const n = f32x4.nearest(f32x4.mul(c, f32x4.splat(1.44269504088896341)));
  let r = f32x4.sub(c, f32x4.mul(n, f32x4.splat(0.693359375)));
  r = f32x4.sub(r, f32x4.mul(n, f32x4.splat(-2.12194440e-4)));
  let p = f32x4.splat(1.9875691500e-4);
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(1.3981999507e-3));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(8.3334519073e-3));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(4.1665795894e-2));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(1.6666665459e-1));
  p = f32x4.add(f32x4.mul(p, r), f32x4.splat(5.0000001201e-1));
  p = f32x4.add(f32x4.add(f32x4.mul(f32x4.mul(p, r), r), r), f32x4.splat(1.0));
  const scale = i32x4.shl(i32x4.add(i32x4.trunc_sat_f32x4_s(n), i32x4.splat(127)), 23);
  return f32x4.mul(p, scale);
}

// @ts-ignore: decorator
@inline function expScalar(x: f32): f32 {
  return f32x4.extract_lane(exp4(f32x4.splat(x)), 0);
}


// @ts-ignore: decorator
@inline function dot(a: usize, b: usize, dim: usize): f32 {
  let s0 = f32x4.splat(0), s1 = f32x4.splat(0);
  let d: usize = 0;
  for (; d + 8 <= dim; d += 8) {
    s0 = f32x4.add(s0, f32x4.mul(v128.load(a + (d << 2)), v128.load(b + (d << 2))));
    s1 = f32x4.add(s1, f32x4.mul(v128.load(a + (d << 2), 16), v128.load(b + (d << 2), 16)));
  }
  if (d < dim) s0 = f32x4.add(s0, f32x4.mul(v128.load(a + (d << 2)), v128.load(b + (d << 2))));
  return hsum(f32x4.add(s0, s1));
}

// acc[0, dim) += w * v[0, dim)
// @ts-ignore: decorator
@inline function axpy(acc: usize, v: usize, w: f32, dim: usize): void {
  const vw = f32x4.splat(w);
  for (let d: usize = 0; d < dim; d += 4) {
    const o = d << 2;
    v128.store(acc + o, f32x4.add(v128.load(acc + o), f32x4.mul(vw, v128.load(v + o))));
  }
}

// @ts-ignore: decorator
@inline function scaleRow(acc: usize, c: f32, dim: usize): void {
  const vc = f32x4.splat(c);
  for (let d: usize = 0; d < dim; d += 4) v128.store(acc + (d << 2), f32x4.mul(v128.load(acc + (d << 2)), vc));
}

// Row i of an online softmax meets scores whose max is m: when m beats the running max, the row's
// weighted sum and total so far shrink by e^(old - m). Returns the max to subtract from the scores.
// @ts-ignore: decorator
@inline function raiseMax(maxes: usize, sums: usize, acc: usize, i: usize, m: f32, n: usize): f32 {
  const old = load<f32>(maxes + (i << 2));
  if (m <= old) return old;
  if (old != -Infinity) {
    const shrink = expScalar(old - m);
    scaleRow(acc + ((i * n) << 2), shrink, n);
    store<f32>(sums + (i << 2), load<f32>(sums + (i << 2)) * shrink);
  }
  store<f32>(maxes + (i << 2), m);
  return m;
}

// Partial layout at `part` (per thread): max [heads], sum [heads], acc [heads, dim], then the tile
// scores [heads, TILE]. Heads are taken four at a time (the usual grouped-query group), so each key
// and value vector loaded serves four heads, and each head's accumulator stays in a register while
// a tile's values are added into it.
export function attend_rows_f32(
  q: usize, heads: i32, dim: i32, keys: usize, values: usize, rows: usize, part: usize, i0: i32, i1: i32,
): void {
  const h = <usize>heads;
  const n = <usize>dim;
  const maxes = part;
  const sums = part + (h << 2);
  const acc = sums + (h << 2);
  const scores = acc + ((h * n) << 2);
  const rowBytes = n << 2;
  const tileBytes = <usize>TILE << 2;
  for (let i: usize = 0; i < h; i++) {
    store<f32>(maxes + (i << 2), -Infinity);
    store<f32>(sums + (i << 2), 0);
  }
  memory.fill(acc, 0, (h * n) << 2);
  for (let t0 = i0; t0 < i1; t0 += TILE) {
    const c = <usize>min(TILE, i1 - t0);
    const list = rows + (<usize>t0 << 2);
    // Scores of every head for the tile: two keys by four heads at a time (eight sums in registers;
    // two rows in flight, which matters when the rows are scattered).
    let j: usize = 0;
    if (h >= 4) {
      for (; j + 2 <= c; j += 2) {
        const kp = keys + <usize>load<i32>(list + (j << 2)) * rowBytes;
        const kq = keys + <usize>load<i32>(list + (j << 2), 4) * rowBytes;
        for (let i: usize = 0; i + 4 <= h; i += 4) {
          const qa = q + i * rowBytes;
          let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
          let b0 = f32x4.splat(0), b1 = f32x4.splat(0), b2 = f32x4.splat(0), b3 = f32x4.splat(0);
          for (let d: usize = 0; d < n; d += 4) {
            const kv = v128.load(kp + (d << 2));
            const kw = v128.load(kq + (d << 2));
            const o = qa + (d << 2);
            const q0 = v128.load(o), q1 = v128.load(o + rowBytes), q2 = v128.load(o + 2 * rowBytes), q3 = v128.load(o + 3 * rowBytes);
            a0 = f32x4.add(a0, f32x4.mul(q0, kv));
            a1 = f32x4.add(a1, f32x4.mul(q1, kv));
            a2 = f32x4.add(a2, f32x4.mul(q2, kv));
            a3 = f32x4.add(a3, f32x4.mul(q3, kv));
            b0 = f32x4.add(b0, f32x4.mul(q0, kw));
            b1 = f32x4.add(b1, f32x4.mul(q1, kw));
            b2 = f32x4.add(b2, f32x4.mul(q2, kw));
            b3 = f32x4.add(b3, f32x4.mul(q3, kw));
          }
          const s = scores + ((i * TILE + j) << 2);
          store<f32>(s, hsum(a0));
          store<f32>(s + tileBytes, hsum(a1));
          store<f32>(s + 2 * tileBytes, hsum(a2));
          store<f32>(s + 3 * tileBytes, hsum(a3));
          store<f32>(s, hsum(b0), 4);
          store<f32>(s + tileBytes, hsum(b1), 4);
          store<f32>(s + 2 * tileBytes, hsum(b2), 4);
          store<f32>(s + 3 * tileBytes, hsum(b3), 4);
        }
        for (let i = h & ~3; i < h; i++) {
          store<f32>(scores + ((i * TILE + j) << 2), dot(q + i * rowBytes, kp, n));
          store<f32>(scores + ((i * TILE + j) << 2), dot(q + i * rowBytes, kq, n), 4);
        }
      }
    }
    for (; j < c; j++) {
      const kp = keys + <usize>load<i32>(list + (j << 2)) * rowBytes;
      for (let i: usize = 0; i < h; i++) store<f32>(scores + ((i * TILE + j) << 2), dot(q + i * rowBytes, kp, n));
    }
    for (let i: usize = 0; i < h; i++) {
      const s = scores + ((i * TILE) << 2);
      let m: f32 = -Infinity;
      for (let j: usize = 0; j < c; j++) m = max(m, load<f32>(s + (j << 2)));
      m = raiseMax(maxes, sums, acc, i, m, n);
      const vm = f32x4.splat(m);
      let total = f32x4.splat(0);
      let j: usize = 0;
      for (; j + 4 <= c; j += 4) {
        const e = exp4(f32x4.sub(v128.load(s + (j << 2)), vm));
        v128.store(s + (j << 2), e);
        total = f32x4.add(total, e);
      }
      let tail: f32 = 0;
      for (; j < c; j++) {
        const e = expScalar(load<f32>(s + (j << 2)) - m);
        store<f32>(s + (j << 2), e);
        tail += e;
      }
      store<f32>(sums + (i << 2), load<f32>(sums + (i << 2)) + hsum(total) + tail);
    }
    // acc[i] += sum_j w[i, j] v[j]: per 4-wide slice of the head dimension, four heads' sums in registers.
    let i: usize = 0;
    for (; i + 4 <= h; i += 4) {
      const a = acc + ((i * n) << 2);
      const w = scores + ((i * TILE) << 2);
      for (let d: usize = 0; d < n; d += 4) {
        const o = d << 2;
        let a0 = v128.load(a + o);
        let a1 = v128.load(a + rowBytes + o);
        let a2 = v128.load(a + 2 * rowBytes + o);
        let a3 = v128.load(a + 3 * rowBytes + o);
        for (let j: usize = 0; j < c; j++) {
          const v = v128.load(values + <usize>load<i32>(list + (j << 2)) * rowBytes + o);
          const wj = w + (j << 2);
          a0 = f32x4.add(a0, f32x4.mul(v128.load32_splat(wj), v));
          a1 = f32x4.add(a1, f32x4.mul(v128.load32_splat(wj + tileBytes), v));
          a2 = f32x4.add(a2, f32x4.mul(v128.load32_splat(wj + 2 * tileBytes), v));
          a3 = f32x4.add(a3, f32x4.mul(v128.load32_splat(wj + 3 * tileBytes), v));
        }
        v128.store(a + o, a0);
        v128.store(a + rowBytes + o, a1);
        v128.store(a + 2 * rowBytes + o, a2);
        v128.store(a + 3 * rowBytes + o, a3);
      }
    }
    for (; i < h; i++) {
      for (let j: usize = 0; j < c; j++) {
        const vp = values + <usize>load<i32>(list + (j << 2)) * rowBytes;
        axpy(acc + ((i * n) << 2), vp, load<f32>(scores + ((i * TILE + j) << 2)), n);
      }
    }
  }
}

// Block-sparse attention for many queries. `params` holds i32 fields:
//   0 q, 1 heads, 2 seq, 3 dim, 4 keys, 5 values, 6 keyLength, 7 queryOffset, 8 blockSize,
//   9 firstBlock (query block of query 0), 10 queryBlocks, 11 lists, 12 offsets, 13 causal (0/1),
//   14 window (0: none), 15 sinks, 16 out
// q [heads, seq, dim] (scaled), keys/values [keyLength, dim], lists: key block ids, offsets
// [queryBlocks + 1] into lists (query block r of the call reads lists[offsets[r], offsets[r+1])),
// out [heads, seq, dim]. Work item w = head * queryBlocks + r, items [r0, r1) on this thread.
// Scratch: acc [blockSize, dim], max [blockSize], sum [blockSize], scores [blockSize, blockSize].
export function attend_blocks_f32(params: usize, scratch: usize, r0: i32, r1: i32): void {
  const q = <usize>load<i32>(params);
  const seq = load<i32>(params, 8);
  const n = <usize>load<i32>(params, 12);
  const keys = <usize>load<i32>(params, 16);
  const values = <usize>load<i32>(params, 20);
  const keyLength = load<i32>(params, 24);
  const queryOffset = load<i32>(params, 28);
  const B = load<i32>(params, 32);
  const firstBlock = load<i32>(params, 36);
  const queryBlocks = load<i32>(params, 40);
  const lists = <usize>load<i32>(params, 44);
  const offsets = <usize>load<i32>(params, 48);
  const causal = load<i32>(params, 52) != 0;
  const window = load<i32>(params, 56);
  const sinks = load<i32>(params, 60);
  const out = <usize>load<i32>(params, 64);
  const rowBytes = n << 2;
  const b = <usize>B;
  const acc = scratch;
  const maxes = acc + ((b * n) << 2);
  const sums = maxes + (b << 2);
  const scores = sums + (b << 2);
  for (let w = r0; w < r1; w++) {
    const head = w / queryBlocks;
    const r = w % queryBlocks;
    const qb = firstBlock + r;
    const s0 = max(0, qb * B - queryOffset);
    const s1 = min(seq, (qb + 1) * B - queryOffset);
    if (s1 <= s0) continue;
    const nq = <usize>(s1 - s0);
    const qBase = q + ((<usize>head * <usize>seq + <usize>s0) * n << 2);
    memory.fill(acc, 0, (nq * n) << 2);
    for (let i: usize = 0; i < nq; i++) {
      store<f32>(maxes + (i << 2), -Infinity);
      store<f32>(sums + (i << 2), 0);
    }
    const lastPosition = queryOffset + s1 - 1;
    const l0 = load<i32>(offsets + (<usize>r << 2));
    const l1 = load<i32>(offsets + (<usize>r << 2), 4);
    for (let l = l0; l < l1; l++) {
      const kb = load<i32>(lists + (<usize>l << 2));
      const k0 = kb * B;
      let k1 = min(k0 + B, keyLength);
      if (causal) k1 = min(k1, lastPosition + 1);
      if (k1 <= k0) continue;
      const nk = <usize>(k1 - k0);
      // Scores: four queries share each key vector load.
      let i: usize = 0;
      for (; i + 4 <= nq; i += 4) {
        const qa = qBase + i * rowBytes;
        for (let j: usize = 0; j < nk; j++) {
          const kp = keys + (<usize>k0 + j) * rowBytes;
          let a0 = f32x4.splat(0), a1 = f32x4.splat(0), a2 = f32x4.splat(0), a3 = f32x4.splat(0);
          for (let d: usize = 0; d < n; d += 4) {
            const kv = v128.load(kp + (d << 2));
            const o = qa + (d << 2);
            a0 = f32x4.add(a0, f32x4.mul(v128.load(o), kv));
            a1 = f32x4.add(a1, f32x4.mul(v128.load(o + rowBytes), kv));
            a2 = f32x4.add(a2, f32x4.mul(v128.load(o + 2 * rowBytes), kv));
            a3 = f32x4.add(a3, f32x4.mul(v128.load(o + 3 * rowBytes), kv));
          }
          store<f32>(scores + ((i * b + j) << 2), hsum(a0));
          store<f32>(scores + (((i + 1) * b + j) << 2), hsum(a1));
          store<f32>(scores + (((i + 2) * b + j) << 2), hsum(a2));
          store<f32>(scores + (((i + 3) * b + j) << 2), hsum(a3));
        }
      }
      for (; i < nq; i++) {
        const qa = qBase + i * rowBytes;
        for (let j: usize = 0; j < nk; j++)
          store<f32>(scores + ((i * b + j) << 2), dot(qa, keys + (<usize>k0 + j) * rowBytes, n));
      }
      // Softmax update per query row, masked keys excluded.
      for (let i: usize = 0; i < nq; i++) {
        const p = queryOffset + s0 + <i32>i;
        const s = scores + ((i * b) << 2);
        // Visible keys of this row inside [k0, k1): [k0, hi) intersected with (window or sinks).
        const hi = causal ? min(k1, p + 1) : k1;
        const lo = window > 0 ? max(k0, p - window + 1) : k0;
        const sinkEnd = window > 0 ? min(hi, sinks) : k0;
        // Keys outside [k0, hi), and those in it that are neither sinks nor in the window, are masked.
        let m: f32 = -Infinity;
        let masked = hi < k1;
        for (let j = k0; j < hi; j++) {
          if (j < lo && j >= sinkEnd) {
            masked = true;
            continue;
          }
          m = max(m, load<f32>(s + (<usize>(j - k0) << 2)));
        }
        if (m == -Infinity) {
          // Nothing visible in this block for this row: every weight is 0.
          for (let j: usize = 0; j < nk; j++) store<f32>(s + (j << 2), 0);
          continue;
        }
        m = raiseMax(maxes, sums, acc, i, m, n);
        const vm = f32x4.splat(m);
        let j: usize = 0;
        for (; j + 4 <= nk; j += 4) v128.store(s + (j << 2), exp4(f32x4.sub(v128.load(s + (j << 2)), vm)));
        for (; j < nk; j++) store<f32>(s + (j << 2), expScalar(load<f32>(s + (j << 2)) - m));
        if (masked) {
          for (let kj = k0; kj < k1; kj++) {
            if (kj < hi && (kj >= lo || kj < sinkEnd)) continue;
            store<f32>(s + (<usize>(kj - k0) << 2), 0);
          }
        }
        let total = f32x4.splat(0);
        j = 0;
        for (; j + 4 <= nk; j += 4) total = f32x4.add(total, v128.load(s + (j << 2)));
        let sum = hsum(total);
        for (; j < nk; j++) sum += load<f32>(s + (j << 2));
        store<f32>(sums + (i << 2), load<f32>(sums + (i << 2)) + sum);
      }
      // acc[i] += sum_j p[i, j] v[j]: each value row is read once for all the block's queries.
      for (let j: usize = 0; j < nk; j++) {
        const vp = values + (<usize>k0 + j) * rowBytes;
        for (let i2: usize = 0; i2 < nq; i2++) {
          const wgt = load<f32>(scores + ((i2 * b + j) << 2));
          if (wgt != 0) axpy(acc + ((i2 * n) << 2), vp, wgt, n);
        }
      }
    }
    const oBase = out + ((<usize>head * <usize>seq + <usize>s0) * n << 2);
    for (let i: usize = 0; i < nq; i++) {
      const sum = load<f32>(sums + (i << 2));
      const o = oBase + i * rowBytes;
      if (sum == 0) {
        memory.fill(o, 0, rowBytes);
        continue;
      }
      const inv = f32x4.splat(1.0 / sum);
      const a = acc + ((i * n) << 2);
      for (let d: usize = 0; d < n; d += 4) v128.store(o + (d << 2), f32x4.mul(v128.load(a + (d << 2)), inv));
    }
  }
}
