// Native CPU kernels behind the backend contract's linear op: y [batch, rows] = x [batch, cols] W^T
// (+ bias) for dense and compressed-row weights (CSR, and N:M / ELL passed as rows of fixed
// length), f32 or f16 values (F16C), i32 or u16 column indices. Each kernel has an AVX2+FMA build and
// a portable one, chosen once at load from the CPU's features. Rows are split over a thread pool by
// nonzeros. The TypeScript side validates shapes and indices once per matrix; these loops trust them.
#include <napi.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#ifdef __linux__
#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#endif

#include "common.h"

namespace sk {
std::unique_ptr<Pool> pool;
std::mutex callMutex;
bool useAvx2 = false;

int partsFor(int64_t work, int threads) {
  // Below ~64k multiply-adds a call is faster on one thread.
  int64_t parts = work / 65536;
  if (parts < 1) parts = 1;
  if (parts > threads * 4) parts = threads * 4;
  return static_cast<int>(parts);
}
}  // namespace sk

namespace {
using namespace sk;

inline float halfToFloat(uint16_t h) {
  uint32_t sign = (h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1f;
  uint32_t mant = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {
      exp = 127 - 15 + 1;
      while ((mant & 0x400u) == 0) {
        mant <<= 1;
        exp--;
      }
      mant &= 0x3ffu;
      bits = sign | (exp << 23) | (mant << 13);
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

template <typename V>
inline float valueAt(const V* v, int64_t i);
template <>
inline float valueAt<float>(const float* v, int64_t i) { return v[i]; }
template <>
inline float valueAt<uint16_t>(const uint16_t* v, int64_t i) { return halfToFloat(v[i]); }

// ---- portable kernels ----

template <typename V>
void denseRowsPortable(const float* x, int batch, const V* w, int rows, int cols, float* y, int r0, int r1) {
  for (int r = r0; r < r1; r++) {
    const V* row = w + static_cast<int64_t>(r) * cols;
    for (int b = 0; b < batch; b++) {
      const float* xb = x + static_cast<int64_t>(b) * cols;
      float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
      int c = 0;
      for (; c + 4 <= cols; c += 4) {
        s0 += valueAt(row, c) * xb[c];
        s1 += valueAt(row, c + 1) * xb[c + 1];
        s2 += valueAt(row, c + 2) * xb[c + 2];
        s3 += valueAt(row, c + 3) * xb[c + 3];
      }
      for (; c < cols; c++) s0 += valueAt(row, c) * xb[c];
      y[static_cast<int64_t>(b) * rows + r] = (s0 + s1) + (s2 + s3);
    }
  }
}

// xt is x transposed [cols, batch] when batch > 1 (each nonzero reads one contiguous run).
template <typename V, typename I>
void csrRowsPortable(const float* x, const float* xt, int batch, const int32_t* indptr, int64_t rowLength,
                     const I* indices, const V* values, int rows, float* y, int r0, int r1, float* acc) {
  for (int r = r0; r < r1; r++) {
    int64_t start = indptr ? indptr[r] : r * rowLength;
    int64_t end = indptr ? indptr[r + 1] : (r + 1) * rowLength;
    if (batch == 1) {
      float s0 = 0, s1 = 0;
      int64_t k = start;
      for (; k + 2 <= end; k += 2) {
        s0 += valueAt(values, k) * x[indices[k]];
        s1 += valueAt(values, k + 1) * x[indices[k + 1]];
      }
      if (k < end) s0 += valueAt(values, k) * x[indices[k]];
      y[r] = s0 + s1;
      continue;
    }
    for (int b = 0; b < batch; b++) acc[b] = 0;
    for (int64_t k = start; k < end; k++) {
      float v = valueAt(values, k);
      const float* xr = xt + static_cast<int64_t>(indices[k]) * batch;
      for (int b = 0; b < batch; b++) acc[b] += v * xr[b];
    }
    for (int b = 0; b < batch; b++) y[static_cast<int64_t>(b) * rows + r] = acc[b];
  }
}

#ifdef SK_X86
// ---- AVX2 + FMA (+ F16C) kernels ----

__attribute__((target("avx2,fma,f16c"))) inline __m256 load8(const float* p) { return _mm256_loadu_ps(p); }
__attribute__((target("avx2,fma,f16c"))) inline __m256 load8(const uint16_t* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
__attribute__((target("avx2,fma,f16c"))) inline float hsum(__m256 v) {
  __m128 lo = _mm256_castps256_ps128(v);
  __m128 hi = _mm256_extractf128_ps(v, 1);
  lo = _mm_add_ps(lo, hi);
  lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
  lo = _mm_add_ss(lo, _mm_shuffle_ps(lo, lo, 1));
  return _mm_cvtss_f32(lo);
}
__attribute__((target("avx2,fma,f16c"))) inline __m256i loadIndex8(const int32_t* p) {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
}
__attribute__((target("avx2,fma,f16c"))) inline __m256i loadIndex8(const uint16_t* p) {
  return _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
// Eight inputs by column index: scalar loads inserted into a register (on the AMD cores measured this
// beats vgatherdps, which is microcoded there).
template <typename I>
__attribute__((target("avx2,fma,f16c"))) inline __m256 gather8(const float* x, const I* i) {
#ifdef SK_HW_GATHER
  return _mm256_i32gather_ps(x, loadIndex8(i), 4);
#else
  __m128 lo = _mm_setr_ps(x[i[0]], x[i[1]], x[i[2]], x[i[3]]);
  __m128 hi = _mm_setr_ps(x[i[4]], x[i[5]], x[i[6]], x[i[7]]);
  return _mm256_insertf128_ps(_mm256_castps128_ps256(lo), hi, 1);
#endif
}
__attribute__((target("avx2,fma,f16c"))) inline float valueAtAvx(const float* v, int64_t i) { return v[i]; }
__attribute__((target("avx2,fma,f16c"))) inline float valueAtAvx(const uint16_t* v, int64_t i) {
  return _cvtsh_ss(v[i]);
}

template <typename V>
__attribute__((target("avx2,fma,f16c"))) void denseRowsAvx2Tail(const float* x, int batch, const V* w, int rows,
                                                                int cols, float* y, int r0, int r1, int b0);

// The dense kernel: rows [r0, r1) of y for every batch row.
template <typename V>
__attribute__((target("avx2,fma,f16c"))) void denseRowsAvx2(const float* x, int batch, const V* w, int rows,
                                                            int cols, float* y, int r0, int r1) {
  int r = r0;
  // Two W rows x four batch rows: 8 accumulators, each load of W feeds 4 FMAs and each load of x 2.
  if (batch >= 4) {
    for (; r + 2 <= r1; r += 2) {
      const V* w0 = w + static_cast<int64_t>(r) * cols;
      const V* w1 = w0 + cols;
      int b = 0;
      for (; b + 4 <= batch; b += 4) {
        const float* x0 = x + static_cast<int64_t>(b) * cols;
        const float* x1 = x0 + cols;
        const float* x2 = x1 + cols;
        const float* x3 = x2 + cols;
        __m256 a00 = _mm256_setzero_ps(), a01 = _mm256_setzero_ps(), a02 = _mm256_setzero_ps(),
               a03 = _mm256_setzero_ps(), a10 = _mm256_setzero_ps(), a11 = _mm256_setzero_ps(),
               a12 = _mm256_setzero_ps(), a13 = _mm256_setzero_ps();
        int c = 0;
        for (; c + 8 <= cols; c += 8) {
          __m256 u = load8(w0 + c), v = load8(w1 + c);
          __m256 xv = _mm256_loadu_ps(x0 + c);
          a00 = _mm256_fmadd_ps(u, xv, a00);
          a10 = _mm256_fmadd_ps(v, xv, a10);
          xv = _mm256_loadu_ps(x1 + c);
          a01 = _mm256_fmadd_ps(u, xv, a01);
          a11 = _mm256_fmadd_ps(v, xv, a11);
          xv = _mm256_loadu_ps(x2 + c);
          a02 = _mm256_fmadd_ps(u, xv, a02);
          a12 = _mm256_fmadd_ps(v, xv, a12);
          xv = _mm256_loadu_ps(x3 + c);
          a03 = _mm256_fmadd_ps(u, xv, a03);
          a13 = _mm256_fmadd_ps(v, xv, a13);
        }
        float s[8] = {hsum(a00), hsum(a01), hsum(a02), hsum(a03), hsum(a10), hsum(a11), hsum(a12), hsum(a13)};
        for (; c < cols; c++) {
          float u = valueAtAvx(w0, c), v = valueAtAvx(w1, c);
          s[0] += u * x0[c];
          s[1] += u * x1[c];
          s[2] += u * x2[c];
          s[3] += u * x3[c];
          s[4] += v * x0[c];
          s[5] += v * x1[c];
          s[6] += v * x2[c];
          s[7] += v * x3[c];
        }
        for (int j = 0; j < 4; j++) {
          y[static_cast<int64_t>(b + j) * rows + r] = s[j];
          y[static_cast<int64_t>(b + j) * rows + r + 1] = s[4 + j];
        }
      }
      if (b < batch) {
        denseRowsAvx2Tail(x, batch, w, rows, cols, y, r, r + 2, b);
      }
    }
  }
  denseRowsAvx2Tail(x, batch, w, rows, cols, y, r, r1, 0);
}

// Rows [r0, r1) for batch rows from b0 on: four batch rows per load of W, then one at a time.
template <typename V>
__attribute__((target("avx2,fma,f16c"))) void denseRowsAvx2Tail(const float* x, int batch, const V* w, int rows,
                                                                int cols, float* y, int r0, int r1, int b0) {
  for (int r = r0; r < r1; r++) {
    const V* row = w + static_cast<int64_t>(r) * cols;
    int b = b0;
    for (; b + 4 <= batch; b += 4) {
      const float* x0 = x + static_cast<int64_t>(b) * cols;
      const float* x1 = x0 + cols;
      const float* x2 = x1 + cols;
      const float* x3 = x2 + cols;
      __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(),
             a3 = _mm256_setzero_ps();
      int c = 0;
      for (; c + 8 <= cols; c += 8) {
        __m256 wv = load8(row + c);
        a0 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x0 + c), a0);
        a1 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x1 + c), a1);
        a2 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x2 + c), a2);
        a3 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x3 + c), a3);
      }
      float s0 = hsum(a0), s1 = hsum(a1), s2 = hsum(a2), s3 = hsum(a3);
      for (; c < cols; c++) {
        float wv = valueAtAvx(row, c);
        s0 += wv * x0[c];
        s1 += wv * x1[c];
        s2 += wv * x2[c];
        s3 += wv * x3[c];
      }
      y[static_cast<int64_t>(b) * rows + r] = s0;
      y[static_cast<int64_t>(b + 1) * rows + r] = s1;
      y[static_cast<int64_t>(b + 2) * rows + r] = s2;
      y[static_cast<int64_t>(b + 3) * rows + r] = s3;
    }
    for (; b < batch; b++) {
      const float* xb = x + static_cast<int64_t>(b) * cols;
      __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
      int c = 0;
      for (; c + 16 <= cols; c += 16) {
        a0 = _mm256_fmadd_ps(load8(row + c), _mm256_loadu_ps(xb + c), a0);
        a1 = _mm256_fmadd_ps(load8(row + c + 8), _mm256_loadu_ps(xb + c + 8), a1);
      }
      for (; c + 8 <= cols; c += 8) a0 = _mm256_fmadd_ps(load8(row + c), _mm256_loadu_ps(xb + c), a0);
      float s = hsum(_mm256_add_ps(a0, a1));
      for (; c < cols; c++) s += valueAtAvx(row, c) * xb[c];
      y[static_cast<int64_t>(b) * rows + r] = s;
    }
  }
}

template <typename V, typename I>
__attribute__((target("avx2,fma,f16c"))) void csrRowsAvx2(const float* x, const float* xt, int batch,
                                                          const int32_t* indptr, int64_t rowLength,
                                                          const I* indices, const V* values, int rows, float* y,
                                                          int r0, int r1, float* acc) {
  for (int r = r0; r < r1; r++) {
    int64_t start = indptr ? indptr[r] : r * rowLength;
    int64_t end = indptr ? indptr[r + 1] : (r + 1) * rowLength;
    if (batch == 1) {
      // Eight inputs at a time by column index.
      __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
      int64_t k = start;
      for (; k + 16 <= end; k += 16) {
        a0 = _mm256_fmadd_ps(load8(values + k), gather8(x, indices + k), a0);
        a1 = _mm256_fmadd_ps(load8(values + k + 8), gather8(x, indices + k + 8), a1);
      }
      for (; k + 8 <= end; k += 8) a0 = _mm256_fmadd_ps(load8(values + k), gather8(x, indices + k), a0);
      float s = hsum(_mm256_add_ps(a0, a1));
      for (; k < end; k++) s += valueAtAvx(values, k) * x[indices[k]];
      y[r] = s;
      continue;
    }
    // Batch columns 16 (then 8) at a time in registers; the rest scalar.
    int b = 0;
    for (; b + 16 <= batch; b += 16) {
      __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), c0 = _mm256_setzero_ps(),
             c1 = _mm256_setzero_ps();
      int64_t k = start;
      for (; k + 2 <= end; k += 2) {
        __m256 v = _mm256_set1_ps(valueAtAvx(values, k));
        __m256 u = _mm256_set1_ps(valueAtAvx(values, k + 1));
        const float* xr = xt + static_cast<int64_t>(indices[k]) * batch + b;
        const float* xq = xt + static_cast<int64_t>(indices[k + 1]) * batch + b;
        a0 = _mm256_fmadd_ps(v, _mm256_loadu_ps(xr), a0);
        a1 = _mm256_fmadd_ps(v, _mm256_loadu_ps(xr + 8), a1);
        c0 = _mm256_fmadd_ps(u, _mm256_loadu_ps(xq), c0);
        c1 = _mm256_fmadd_ps(u, _mm256_loadu_ps(xq + 8), c1);
      }
      if (k < end) {
        __m256 v = _mm256_set1_ps(valueAtAvx(values, k));
        const float* xr = xt + static_cast<int64_t>(indices[k]) * batch + b;
        a0 = _mm256_fmadd_ps(v, _mm256_loadu_ps(xr), a0);
        a1 = _mm256_fmadd_ps(v, _mm256_loadu_ps(xr + 8), a1);
      }
      _mm256_storeu_ps(acc + b, _mm256_add_ps(a0, c0));
      _mm256_storeu_ps(acc + b + 8, _mm256_add_ps(a1, c1));
    }
    for (; b + 8 <= batch; b += 8) {
      // Four independent sums over the nonzeros: one FMA chain would wait on its own latency.
      __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(),
             a3 = _mm256_setzero_ps();
      const float* xb = xt + b;
      int64_t k = start;
      for (; k + 4 <= end; k += 4) {
        a0 = _mm256_fmadd_ps(_mm256_set1_ps(valueAtAvx(values, k)),
                             _mm256_loadu_ps(xb + static_cast<int64_t>(indices[k]) * batch), a0);
        a1 = _mm256_fmadd_ps(_mm256_set1_ps(valueAtAvx(values, k + 1)),
                             _mm256_loadu_ps(xb + static_cast<int64_t>(indices[k + 1]) * batch), a1);
        a2 = _mm256_fmadd_ps(_mm256_set1_ps(valueAtAvx(values, k + 2)),
                             _mm256_loadu_ps(xb + static_cast<int64_t>(indices[k + 2]) * batch), a2);
        a3 = _mm256_fmadd_ps(_mm256_set1_ps(valueAtAvx(values, k + 3)),
                             _mm256_loadu_ps(xb + static_cast<int64_t>(indices[k + 3]) * batch), a3);
      }
      for (; k < end; k++)
        a0 = _mm256_fmadd_ps(_mm256_set1_ps(valueAtAvx(values, k)),
                             _mm256_loadu_ps(xb + static_cast<int64_t>(indices[k]) * batch), a0);
      _mm256_storeu_ps(acc + b, _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    }
    if (b < batch) {
      for (int bb = b; bb < batch; bb++) acc[bb] = 0;
      for (int64_t k = start; k < end; k++) {
        float v = valueAtAvx(values, k);
        const float* xr = xt + static_cast<int64_t>(indices[k]) * batch;
        for (int bb = b; bb < batch; bb++) acc[bb] += v * xr[bb];
      }
    }
    for (int b = 0; b < batch; b++) y[static_cast<int64_t>(b) * rows + r] = acc[b];
  }
}
// 2:4 at batch 1 without gathers: each 8 slots (4 groups) read 16 consecutive inputs as two
// registers, and a permute picks each slot's input by its lane (its position inside its 8-input
// half), so the weight's bytes are the values plus one byte per slot.
// 2:4 at batch 1 without gathers. Slot k of a row is input 4 (k / 2) + position (the N:M format's
// 2-bit positions). Eight slots cover 16 inputs, two groups of 4 per 128-bit lane of the result:
// lane 0 takes groups 0 and 1, lane 1 groups 2 and 3. With x reordered once per call so each 16
// inputs read [0-3, 8-11 | 4-7, 12-15], an in-lane permute (vpermilps, which reads only the low 2
// bits of each control) of the first half picks the even groups and of the second half the odd
// groups, and one blend interleaves them: the positions, shifted into place, are the controls.
__attribute__((target("avx2,fma,f16c"))) inline __m256i nm24Controls(const uint8_t* p) {
  const __m256i shifts = _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14);
  uint16_t bits;
  std::memcpy(&bits, p, 2);  // little-endian: slot 0's position in the lowest bits
  return _mm256_srlv_epi32(_mm256_set1_epi32(bits), shifts);
}

__attribute__((target("avx2,fma,f16c"))) inline __m256 nm24Gather(const float* xr, const uint8_t* p) {
  __m256i c = nm24Controls(p);
  __m256 even = _mm256_permutevar_ps(_mm256_loadu_ps(xr), c);
  __m256 odd = _mm256_permutevar_ps(_mm256_loadu_ps(xr + 8), c);
  return _mm256_blend_ps(even, odd, 0xCC);
}

template <typename V>
__attribute__((target("avx2,fma,f16c"))) void nm24RowsAvx2(const float* x, const float* xr, const V* values,
                                                           const uint8_t* positions, int rows, int cols, float* y,
                                                           int r0, int r1) {
  const int64_t slots = cols / 2;  // 2 of every 4
  const int64_t main = slots & ~static_cast<int64_t>(7);
  for (int r = r0; r < r1; r++) {
    const V* v = values + static_cast<int64_t>(r) * slots;
    const uint8_t* p = positions + static_cast<int64_t>(r) * cols / 8;  // 2 bits x cols / 2 slots per row
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
    int64_t k = 0;
    for (; k + 32 <= main; k += 32) {
      a0 = _mm256_fmadd_ps(load8(v + k), nm24Gather(xr + 2 * k, p + k / 4), a0);
      a1 = _mm256_fmadd_ps(load8(v + k + 8), nm24Gather(xr + 2 * k + 16, p + k / 4 + 2), a1);
      a2 = _mm256_fmadd_ps(load8(v + k + 16), nm24Gather(xr + 2 * k + 32, p + k / 4 + 4), a2);
      a3 = _mm256_fmadd_ps(load8(v + k + 24), nm24Gather(xr + 2 * k + 48, p + k / 4 + 6), a3);
    }
    for (; k < main; k += 8) a0 = _mm256_fmadd_ps(load8(v + k), nm24Gather(xr + 2 * k, p + k / 4), a0);
    float s = hsum(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    for (; k < slots; k++) {
      int position = (p[k / 4] >> (2 * (k & 3))) & 3;
      s += valueAtAvx(v, k) * x[(k / 2) * 4 + position];
    }
    y[r] = s;
  }
}
// Four active inputs per pass over the slice of y: one load and store of y per 4 columns.
__attribute__((target("avx2,fma,f16c"))) void gatherRowsAvx2(const float* columns, const float* x,
                                                             const int32_t* active, int count, int rows, float* y,
                                                             int o0, int o1) {
  int a = 0;
  for (; a + 4 <= count; a += 4) {
    const float* c0 = columns + static_cast<int64_t>(active[a]) * rows;
    const float* c1 = columns + static_cast<int64_t>(active[a + 1]) * rows;
    const float* c2 = columns + static_cast<int64_t>(active[a + 2]) * rows;
    const float* c3 = columns + static_cast<int64_t>(active[a + 3]) * rows;
    __m256 x0 = _mm256_set1_ps(x[active[a]]), x1 = _mm256_set1_ps(x[active[a + 1]]),
           x2 = _mm256_set1_ps(x[active[a + 2]]), x3 = _mm256_set1_ps(x[active[a + 3]]);
    int o = o0;
    for (; o + 8 <= o1; o += 8) {
      __m256 acc = _mm256_loadu_ps(y + o);
      acc = _mm256_fmadd_ps(x0, _mm256_loadu_ps(c0 + o), acc);
      acc = _mm256_fmadd_ps(x1, _mm256_loadu_ps(c1 + o), acc);
      acc = _mm256_fmadd_ps(x2, _mm256_loadu_ps(c2 + o), acc);
      acc = _mm256_fmadd_ps(x3, _mm256_loadu_ps(c3 + o), acc);
      _mm256_storeu_ps(y + o, acc);
    }
    const float s0 = x[active[a]], s1 = x[active[a + 1]], s2 = x[active[a + 2]], s3 = x[active[a + 3]];
    for (; o < o1; o++) y[o] += s0 * c0[o] + s1 * c1[o] + s2 * c2[o] + s3 * c3[o];
  }
  for (; a < count; a++) {
    const float* c = columns + static_cast<int64_t>(active[a]) * rows;
    __m256 xv = _mm256_set1_ps(x[active[a]]);
    int o = o0;
    for (; o + 8 <= o1; o += 8) _mm256_storeu_ps(y + o, _mm256_fmadd_ps(xv, _mm256_loadu_ps(c + o), _mm256_loadu_ps(y + o)));
    for (; o < o1; o++) y[o] += x[active[a]] * c[o];
  }
}
// BSR at batch 1 with blocks R x C, C a multiple of 8: each block row reads, per block, C contiguous
// inputs once for its R rows (no gathers; one index per block).
template <typename V, typename I>
__attribute__((target("avx2,fma,f16c"))) void bsrRowsAvx2(const float* x, const int32_t* indptr, const I* indices,
                                                          const V* values, int R, int C, float* y, int b0,
                                                          int b1) {
  const int64_t blockSize = static_cast<int64_t>(R) * C;
  for (int br = b0; br < b1; br++) {
    for (int r = 0; r < R; r++) {
      __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
      int32_t k = indptr[br];
      const int32_t kEnd = indptr[br + 1];
      if (C == 8) {
        // One 8-wide block per FMA: two blocks per step on independent sums.
        for (; k + 2 <= kEnd; k += 2) {
          const V* block = values + k * blockSize + static_cast<int64_t>(r) * 8;
          a0 = _mm256_fmadd_ps(load8(block), _mm256_loadu_ps(x + static_cast<int64_t>(indices[k]) * 8), a0);
          a1 = _mm256_fmadd_ps(load8(block + blockSize), _mm256_loadu_ps(x + static_cast<int64_t>(indices[k + 1]) * 8),
                               a1);
        }
      }
      for (; k < kEnd; k++) {
        const V* block = values + k * blockSize + static_cast<int64_t>(r) * C;
        const float* xs = x + static_cast<int64_t>(indices[k]) * C;
        int c = 0;
        for (; c + 16 <= C; c += 16) {
          a0 = _mm256_fmadd_ps(load8(block + c), _mm256_loadu_ps(xs + c), a0);
          a1 = _mm256_fmadd_ps(load8(block + c + 8), _mm256_loadu_ps(xs + c + 8), a1);
        }
        for (; c < C; c += 8) a0 = _mm256_fmadd_ps(load8(block + c), _mm256_loadu_ps(xs + c), a0);
      }
      y[static_cast<int64_t>(br) * R + r] = hsum(_mm256_add_ps(a0, a1));
    }
  }
}
#endif

// ---- dispatch and threading ----

struct Range {
  int r0, r1;
};

// Split rows into at most `parts` ranges of about equal work (nonzeros, or rows when dense).
std::vector<Range> splitRows(int rows, const int32_t* indptr, int64_t rowLength, int parts) {
  std::vector<Range> out;
  if (rows <= 0) return out;
  if (parts < 1) parts = 1;
  if (parts > rows) parts = rows;
  int64_t total = indptr ? indptr[rows] - indptr[0] : static_cast<int64_t>(rows) * (rowLength > 0 ? rowLength : 1);
  int r = 0;
  for (int p = 0; p < parts && r < rows; p++) {
    int64_t target = indptr ? indptr[0] + (total * (p + 1)) / parts : 0;
    int end;
    if (p == parts - 1) {
      end = rows;
    } else if (indptr) {
      // First row whose end passes the target.
      int lo = r + 1, hi = rows;
      while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (indptr[mid] >= target) hi = mid; else lo = mid + 1;
      }
      end = lo;
    } else {
      end = static_cast<int>((static_cast<int64_t>(rows) * (p + 1)) / parts);
      if (end <= r) end = r + 1;
    }
    out.push_back({r, end});
    r = end;
  }
  return out;
}

void addBias(float* y, int batch, int rows, const float* bias) {
  if (!bias) return;
  for (int b = 0; b < batch; b++)
    for (int r = 0; r < rows; r++) y[static_cast<int64_t>(b) * rows + r] += bias[r];
}

template <typename V>
void runDense(const float* x, int batch, const V* w, int rows, int cols, const float* bias, float* y) {
  auto ranges = splitRows(rows, nullptr, cols, partsFor(static_cast<int64_t>(rows) * cols * batch, pool->threads()));
  pool->run(static_cast<int>(ranges.size()), [&](int t) {
#ifdef SK_X86
    if (useAvx2) return denseRowsAvx2(x, batch, w, rows, cols, y, ranges[t].r0, ranges[t].r1);
#endif
    denseRowsPortable(x, batch, w, rows, cols, y, ranges[t].r0, ranges[t].r1);
  });
  addBias(y, batch, rows, bias);
}

template <typename V, typename I>
void runCsr(const float* x, int batch, int cols, const int32_t* indptr, int64_t rowLength, const I* indices,
            const V* values, int rows, const float* bias, float* y) {
  std::vector<float> xt;
  if (batch > 1) {
    xt.resize(static_cast<size_t>(batch) * cols);
    for (int b = 0; b < batch; b++)
      for (int c = 0; c < cols; c++) xt[static_cast<size_t>(c) * batch + b] = x[static_cast<size_t>(b) * cols + c];
  }
  int64_t nnz = indptr ? indptr[rows] - indptr[0] : rowLength * rows;
  auto ranges = splitRows(rows, indptr, rowLength, partsFor(nnz * batch, pool->threads()));
  pool->run(static_cast<int>(ranges.size()), [&](int t) {
    std::vector<float> acc(batch > 1 ? batch : 1);
#ifdef SK_X86
    if (useAvx2)
      return csrRowsAvx2(x, xt.data(), batch, indptr, rowLength, indices, values, rows, y, ranges[t].r0,
                         ranges[t].r1, acc.data());
#endif
    csrRowsPortable(x, xt.data(), batch, indptr, rowLength, indices, values, rows, y, ranges[t].r0, ranges[t].r1,
                    acc.data());
  });
  addBias(y, batch, rows, bias);
}

// linearDense(x, batch, values, f16, rows, cols, bias | null, out)
Napi::Value LinearDense(const Napi::CallbackInfo& info) {
  std::lock_guard<std::mutex> lock(callMutex);
  const float* x = dataOf<float>(info[0]);
  int batch = info[1].As<Napi::Number>().Int32Value();
  bool f16 = info[3].As<Napi::Boolean>().Value();
  int rows = info[4].As<Napi::Number>().Int32Value();
  int cols = info[5].As<Napi::Number>().Int32Value();
  const float* bias = dataOf<float>(info[6]);
  float* y = dataOf<float>(info[7]);
  if (f16) runDense(x, batch, dataOf<uint16_t>(info[2]), rows, cols, bias, y);
  else if (batch >= BLAS_MIN_BATCH && blasLinear(x, batch, dataOf<float>(info[2]), rows, cols, y))
    addBias(y, batch, rows, bias);
  else runDense(x, batch, dataOf<float>(info[2]), rows, cols, bias, y);
  return info.Env().Undefined();
}

// linearCsr(x, batch, cols, indptr | null, rowLength, indices, u16, values, f16, rows, bias | null, out)
Napi::Value LinearCsr(const Napi::CallbackInfo& info) {
  std::lock_guard<std::mutex> lock(callMutex);
  const float* x = dataOf<float>(info[0]);
  int batch = info[1].As<Napi::Number>().Int32Value();
  int cols = info[2].As<Napi::Number>().Int32Value();
  const int32_t* indptr = dataOf<int32_t>(info[3]);
  int64_t rowLength = info[4].As<Napi::Number>().Int64Value();
  bool u16 = info[6].As<Napi::Boolean>().Value();
  bool f16 = info[8].As<Napi::Boolean>().Value();
  int rows = info[9].As<Napi::Number>().Int32Value();
  const float* bias = dataOf<float>(info[10]);
  float* y = dataOf<float>(info[11]);
  if (u16) {
    auto idx = dataOf<uint16_t>(info[5]);
    if (f16) runCsr(x, batch, cols, indptr, rowLength, idx, dataOf<uint16_t>(info[7]), rows, bias, y);
    else runCsr(x, batch, cols, indptr, rowLength, idx, dataOf<float>(info[7]), rows, bias, y);
  } else {
    auto idx = dataOf<int32_t>(info[5]);
    if (f16) runCsr(x, batch, cols, indptr, rowLength, idx, dataOf<uint16_t>(info[7]), rows, bias, y);
    else runCsr(x, batch, cols, indptr, rowLength, idx, dataOf<float>(info[7]), rows, bias, y);
  }
  return info.Env().Undefined();
}

template <typename V>
void runNm24(const float* x, const V* values, const uint8_t* positions, int rows, int cols, const float* bias,
             float* y) {
#ifdef SK_X86
  // x reordered per 16 inputs as [0-3, 8-11, 4-7, 12-15] (see nm24RowsAvx2).
  std::vector<float> xr(static_cast<size_t>(cols));
  for (int c0 = 0; c0 + 16 <= cols; c0 += 16) {
    for (int i = 0; i < 4; i++) {
      xr[c0 + i] = x[c0 + i];
      xr[c0 + 4 + i] = x[c0 + 8 + i];
      xr[c0 + 8 + i] = x[c0 + 4 + i];
      xr[c0 + 12 + i] = x[c0 + 12 + i];
    }
  }
  auto ranges = splitRows(rows, nullptr, cols / 2, partsFor(static_cast<int64_t>(rows) * cols / 2, pool->threads()));
  pool->run(static_cast<int>(ranges.size()), [&](int t) {
    nm24RowsAvx2(x, xr.data(), values, positions, rows, cols, y, ranges[t].r0, ranges[t].r1);
  });
  addBias(y, 1, rows, bias);
#endif
}

// linearNm24(x, values, f16, positions, rows, cols, bias | null, out): batch 1, AVX2 only; positions are
// the N:M format's 2-bit indices, cols a multiple of 8 (so every row's start at a byte).
Napi::Value LinearNm24(const Napi::CallbackInfo& info) {
  std::lock_guard<std::mutex> lock(callMutex);
  const float* x = dataOf<float>(info[0]);
  bool f16 = info[2].As<Napi::Boolean>().Value();
  const uint8_t* positions = dataOf<uint8_t>(info[3]);
  int rows = info[4].As<Napi::Number>().Int32Value();
  int cols = info[5].As<Napi::Number>().Int32Value();
  const float* bias = dataOf<float>(info[6]);
  float* y = dataOf<float>(info[7]);
  if (f16) runNm24(x, dataOf<uint16_t>(info[1]), positions, rows, cols, bias, y);
  else runNm24(x, dataOf<float>(info[1]), positions, rows, cols, bias, y);
  return info.Env().Undefined();
}

// exchangePaths(a, b): swap two paths in one step (Linux renameat2 with RENAME_EXCHANGE). Returns
// false where the kernel or the file system cannot (then callers fall back to two renames); throws
// with the system's message on any other failure.
Napi::Value ExchangePaths(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string a = info[0].As<Napi::String>().Utf8Value();
  std::string b = info[1].As<Napi::String>().Utf8Value();
#if defined(__linux__) && defined(SYS_renameat2)
  long r = syscall(SYS_renameat2, AT_FDCWD, a.c_str(), AT_FDCWD, b.c_str(), 2 /* RENAME_EXCHANGE */);
  if (r == 0) return Napi::Boolean::New(env, true);
  int e = errno;
  if (e == EINVAL || e == ENOSYS || e == EOPNOTSUPP) return Napi::Boolean::New(env, false);
  Napi::Error error = Napi::Error::New(env, std::string("renameat2: ") + std::strerror(e));
  error.Set("errno", Napi::Number::New(env, e));
  error.ThrowAsJavaScriptException();
  return env.Undefined();
#else
  (void)a;
  (void)b;
  return Napi::Boolean::New(env, false);
#endif
}

// y [rows] = bias + sum over active inputs i of x[i] * columns[i, :] (columns = W^T [in, rows]):
// threads take slices of y, so each reads its slice of every active column and no sums are merged.
void gatherRows(const float* columns, const float* x, const int32_t* active, int count, int rows, float* y,
                int o0, int o1) {
#ifdef SK_X86
  if (useAvx2) return gatherRowsAvx2(columns, x, active, count, rows, y, o0, o1);
#endif
  for (int a = 0; a < count; a++) {
    const float xi = x[active[a]];
    const float* c = columns + static_cast<int64_t>(active[a]) * rows;
    for (int o = o0; o < o1; o++) y[o] += xi * c[o];
  }
}

// gatherGemv(columns, x, active, rows, out): out holds the bias (or zeros) on entry.
Napi::Value GatherGemv(const Napi::CallbackInfo& info) {
  std::lock_guard<std::mutex> lock(callMutex);
  const float* columns = dataOf<float>(info[0]);
  const float* x = dataOf<float>(info[1]);
  auto activeArray = info[2].As<Napi::TypedArray>();
  const int32_t* active = dataOf<int32_t>(info[2]);
  int count = static_cast<int>(activeArray.ElementLength());
  int rows = info[3].As<Napi::Number>().Int32Value();
  float* y = dataOf<float>(info[4]);
  int64_t work = static_cast<int64_t>(count) * rows;
  int parts = partsFor(work, pool->threads());
  // Slices of y in multiples of 64 outputs (whole cache lines per thread).
  int chunk = ((rows + parts - 1) / parts + 63) / 64 * 64;
  int tasks = chunk == 0 ? 0 : (rows + chunk - 1) / chunk;
  pool->run(tasks, [&](int t) {
    int o0 = t * chunk;
    int o1 = o0 + chunk < rows ? o0 + chunk : rows;
    gatherRows(columns, x, active, count, rows, y, o0, o1);
  });
  return info.Env().Undefined();
}

template <typename V, typename I>
void runBsr(const float* x, const int32_t* indptr, const I* indices, const V* values, int blockRowCount, int R, int C,
            int rows, const float* bias, float* y) {
#ifdef SK_X86
  int64_t nnz = static_cast<int64_t>(indptr[blockRowCount] - indptr[0]) * R * C;
  auto ranges = splitRows(blockRowCount, indptr, 0, partsFor(nnz, pool->threads()));
  pool->run(static_cast<int>(ranges.size()),
            [&](int t) { bsrRowsAvx2(x, indptr, indices, values, R, C, y, ranges[t].r0, ranges[t].r1); });
  addBias(y, 1, rows, bias);
#endif
}

// linearBsr(x, indptr, indices, u16, values, f16, blockRows, blockCols, rows, bias | null, out): batch 1,
// AVX2 only, blockCols a multiple of 8.
Napi::Value LinearBsr(const Napi::CallbackInfo& info) {
  std::lock_guard<std::mutex> lock(callMutex);
  const float* x = dataOf<float>(info[0]);
  const int32_t* indptr = dataOf<int32_t>(info[1]);
  bool u16 = info[3].As<Napi::Boolean>().Value();
  bool f16 = info[5].As<Napi::Boolean>().Value();
  int R = info[6].As<Napi::Number>().Int32Value();
  int C = info[7].As<Napi::Number>().Int32Value();
  int rows = info[8].As<Napi::Number>().Int32Value();
  const float* bias = dataOf<float>(info[9]);
  float* y = dataOf<float>(info[10]);
  int blockRowCount = rows / R;
  if (u16) {
    auto idx = dataOf<uint16_t>(info[2]);
    if (f16) runBsr(x, indptr, idx, dataOf<uint16_t>(info[4]), blockRowCount, R, C, rows, bias, y);
    else runBsr(x, indptr, idx, dataOf<float>(info[4]), blockRowCount, R, C, rows, bias, y);
  } else {
    auto idx = dataOf<int32_t>(info[2]);
    if (f16) runBsr(x, indptr, idx, dataOf<uint16_t>(info[4]), blockRowCount, R, C, rows, bias, y);
    else runBsr(x, indptr, idx, dataOf<float>(info[4]), blockRowCount, R, C, rows, bias, y);
  }
  return info.Env().Undefined();
}

Napi::Value SetThreads(const Napi::CallbackInfo& info) {
  int n = info[0].As<Napi::Number>().Int32Value();
  if (n < 1) n = 1;
  std::lock_guard<std::mutex> lock(callMutex);
  if (n != pool->threads()) pool->resize(n);
  setBlasThreads(n);
  return info.Env().Undefined();
}

Napi::Value Features(const Napi::CallbackInfo& info) {
  Napi::Object o = Napi::Object::New(info.Env());
#ifdef SK_X86
  __builtin_cpu_init();
  o.Set("avx2", __builtin_cpu_supports("avx2") != 0);
  o.Set("fma", __builtin_cpu_supports("fma") != 0);
  o.Set("f16c", __builtin_cpu_supports("f16c") != 0);
  o.Set("avx512f", __builtin_cpu_supports("avx512f") != 0);
#else
  o.Set("avx2", false);
  o.Set("fma", false);
  o.Set("f16c", false);
  o.Set("avx512f", false);
#endif
  o.Set("kernels", useAvx2 ? "avx2" : "portable");
  const char* blas = blasName();
  if (blas == nullptr) o.Set("blas", info.Env().Null());
  else o.Set("blas", blas);
  o.Set("threads", pool->threads());
  return o;
}

// useKernels('avx2' | 'portable'): for tests of both paths on one machine.
Napi::Value UseKernels(const Napi::CallbackInfo& info) {
  std::string which = info[0].As<Napi::String>().Utf8Value();
#ifdef SK_X86
  useAvx2 = which == "avx2" && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
            __builtin_cpu_supports("f16c");
#else
  useAvx2 = false;
#endif
  return Napi::Boolean::New(info.Env(), useAvx2);
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  {
    std::lock_guard<std::mutex> lock(callMutex);
    if (!pool) pool = std::make_unique<Pool>(1);
  }
#ifdef SK_X86
  __builtin_cpu_init();
  useAvx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
#endif
  exports.Set("linearDense", Napi::Function::New(env, LinearDense));
  exports.Set("linearCsr", Napi::Function::New(env, LinearCsr));
  exports.Set("linearNm24", Napi::Function::New(env, LinearNm24));
  exports.Set("linearBsr", Napi::Function::New(env, LinearBsr));
  exports.Set("gatherGemv", Napi::Function::New(env, GatherGemv));
  exports.Set("attend", Napi::Function::New(env, sk::Attend));
  exports.Set("exchangePaths", Napi::Function::New(env, ExchangePaths));
  exports.Set("setThreads", Napi::Function::New(env, SetThreads));
  exports.Set("features", Napi::Function::New(env, Features));
  exports.Set("useKernels", Napi::Function::New(env, UseKernels));
  exports.Set("useBlas", Napi::Function::New(env, [](const Napi::CallbackInfo& info) {
    std::lock_guard<std::mutex> lock(callMutex);
    return Napi::Boolean::New(info.Env(), useBlas(info[0].As<Napi::Boolean>().Value()));
  }));
  return exports;
}

}  // namespace

NODE_API_MODULE(sparsekit_kernels, Init)
