// Blocks (BSR) without gathers: one index per block, its values contiguous.
#include "simd.h"

namespace sk {
namespace {

#ifdef SK_X86
// BSR with blocks R x C, C a multiple of 8 (1 x k along inputs): each block row reads, per block, C
// contiguous inputs for each of its R rows (no gathers; one index per block). At batch 1 two 8-wide
// blocks go per step on independent sums; wider batches take four batch rows per load of the block.
template <typename V, typename I>
__attribute__((target("avx2,fma,f16c"))) void bsrWideAvx2(const float* x, int batch, int cols, const int32_t* indptr,
                                                          const I* indices, const V* values, int R, int C,
                                                          int rows, float* y, int b0, int b1) {
  const int64_t blockSize = static_cast<int64_t>(R) * C;
  for (int br = b0; br < b1; br++) {
    const int32_t kStart = indptr[br], kEnd = indptr[br + 1];
    for (int r = 0; r < R; r++) {
      const int64_t out = static_cast<int64_t>(br) * R + r;
      if (batch == 1) {
        __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
        int32_t k = kStart;
        if (C == 8) {
          for (; k + 2 <= kEnd; k += 2) {
            const V* block = values + k * blockSize + static_cast<int64_t>(r) * 8;
            a0 = _mm256_fmadd_ps(load8(block), _mm256_loadu_ps(x + static_cast<int64_t>(indices[k]) * 8), a0);
            a1 = _mm256_fmadd_ps(load8(block + blockSize),
                                 _mm256_loadu_ps(x + static_cast<int64_t>(indices[k + 1]) * 8), a1);
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
        y[out] = hsum(_mm256_add_ps(a0, a1));
        continue;
      }
      int b = 0;
      for (; b < batch; b += 4) {
        const int nb = batch - b < 4 ? batch - b : 4;
        __m256 a[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
        const float* xb = x + static_cast<int64_t>(b) * cols;
        for (int32_t k = kStart; k < kEnd; k++) {
          const V* block = values + k * blockSize + static_cast<int64_t>(r) * C;
          const int64_t at = static_cast<int64_t>(indices[k]) * C;
          for (int c = 0; c < C; c += 8) {
            const __m256 v = load8(block + c);
            if (nb == 4) {
              a[0] = _mm256_fmadd_ps(v, _mm256_loadu_ps(xb + at + c), a[0]);
              a[1] = _mm256_fmadd_ps(v, _mm256_loadu_ps(xb + cols + at + c), a[1]);
              a[2] = _mm256_fmadd_ps(v, _mm256_loadu_ps(xb + 2 * static_cast<int64_t>(cols) + at + c), a[2]);
              a[3] = _mm256_fmadd_ps(v, _mm256_loadu_ps(xb + 3 * static_cast<int64_t>(cols) + at + c), a[3]);
            } else {
              for (int j = 0; j < nb; j++)
                a[j] = _mm256_fmadd_ps(v, _mm256_loadu_ps(xb + j * static_cast<int64_t>(cols) + at + c), a[j]);
            }
          }
        }
        for (int j = 0; j < nb; j++) y[static_cast<int64_t>(b + j) * rows + out] = hsum(a[j]);
      }
    }
  }
}

// BSR with blocks R x 1, R a multiple of 8 (k x 1 along outputs): a block is R consecutive outputs of
// one input, so each block is one broadcast of x times R / 8 registers of values, summed in registers
// that hold 8 outputs; four batch rows per load of the block.
template <typename V, typename I>
__attribute__((target("avx2,fma,f16c"))) void bsrTallAvx2(const float* x, int batch, int cols, const int32_t* indptr,
                                                          const I* indices, const V* values, int R, int rows,
                                                          float* y, int b0, int b1) {
  for (int br = b0; br < b1; br++) {
    const int32_t kStart = indptr[br], kEnd = indptr[br + 1];
    for (int r = 0; r < R; r += 8) {
      const int64_t out = static_cast<int64_t>(br) * R + r;
      for (int b = 0; b < batch; b += 4) {
        const int nb = batch - b < 4 ? batch - b : 4;
        const float* xb = x + static_cast<int64_t>(b) * cols;
        __m256 a[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
        if (nb == 1) {
          // Two blocks per step on independent sums.
          __m256 c0 = _mm256_setzero_ps();
          int32_t k = kStart;
          for (; k + 2 <= kEnd; k += 2) {
            a[0] = _mm256_fmadd_ps(load8(values + static_cast<int64_t>(k) * R + r), _mm256_set1_ps(xb[indices[k]]),
                                   a[0]);
            c0 = _mm256_fmadd_ps(load8(values + static_cast<int64_t>(k + 1) * R + r),
                                 _mm256_set1_ps(xb[indices[k + 1]]), c0);
          }
          if (k < kEnd)
            a[0] = _mm256_fmadd_ps(load8(values + static_cast<int64_t>(k) * R + r), _mm256_set1_ps(xb[indices[k]]),
                                   a[0]);
          a[0] = _mm256_add_ps(a[0], c0);
        } else {
          for (int32_t k = kStart; k < kEnd; k++) {
            const __m256 v = load8(values + static_cast<int64_t>(k) * R + r);
            const int64_t at = indices[k];
            for (int j = 0; j < nb; j++)
              a[j] = _mm256_fmadd_ps(v, _mm256_set1_ps(xb[j * static_cast<int64_t>(cols) + at]), a[j]);
          }
        }
        for (int j = 0; j < nb; j++) _mm256_storeu_ps(y + static_cast<int64_t>(b + j) * rows + out, a[j]);
      }
    }
  }
}

// BSR in blocks of four values (1x4, 4x1, 2x2) at batch 1: two blocks per register, their inputs
// laid out as the values are (a block's C inputs repeated R times), two registers of sums, and the
// lanes added into the block's R outputs at the end.
template <int C>
__attribute__((target("avx2,fma,f16c"))) inline __m128 quadInputs(const float* x, int64_t index) {
  if (C == 4) return _mm_loadu_ps(x + index * 4);
  if (C == 2) return _mm_castpd_ps(_mm_loaddup_pd(reinterpret_cast<const double*>(x + index * 2)));
  return _mm_set1_ps(x[index]);
}
__attribute__((target("avx2,fma,f16c"))) inline __m128 load4(const float* p) { return _mm_loadu_ps(p); }
__attribute__((target("avx2,fma,f16c"))) inline __m128 load4(const uint16_t* p) {
  return _mm_cvtph_ps(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
}

template <int R, int C, typename V, typename I>
__attribute__((target("avx2,fma,f16c"))) void bsrQuadAvx2(const float* x, const int32_t* indptr, const I* indices,
                                                          const V* values, float* y, int b0, int b1) {
  static_assert(R * C == 4, "blocks of four values");
  for (int br = b0; br < b1; br++) {
    const int32_t kStart = indptr[br], kEnd = indptr[br + 1];
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    int32_t k = kStart;
    for (; k + 4 <= kEnd; k += 4) {
      const __m256 x0 = _mm256_set_m128(quadInputs<C>(x, indices[k + 1]), quadInputs<C>(x, indices[k]));
      const __m256 x1 = _mm256_set_m128(quadInputs<C>(x, indices[k + 3]), quadInputs<C>(x, indices[k + 2]));
      a0 = _mm256_fmadd_ps(load8(values + static_cast<int64_t>(k) * 4), x0, a0);
      a1 = _mm256_fmadd_ps(load8(values + static_cast<int64_t>(k + 2) * 4), x1, a1);
    }
    const __m256 a = _mm256_add_ps(a0, a1);
    __m128 t = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    for (; k < kEnd; k++) t = _mm_fmadd_ps(load4(values + static_cast<int64_t>(k) * 4), quadInputs<C>(x, indices[k]), t);
    alignas(16) float l[4];
    _mm_store_ps(l, t);
    float* yb = y + static_cast<int64_t>(br) * R;
    if (R == 1) {
      yb[0] = (l[0] + l[1]) + (l[2] + l[3]);
    } else if (R == 2) {
      yb[0] = l[0] + l[1];
      yb[1] = l[2] + l[3];
    } else {
      for (int r = 0; r < 4; r++) yb[r] = l[r];
    }
  }
}

// BSR in blocks of two values (1x2, 2x1) at batch 1: four blocks per register, the inputs laid out
// as the values are; lane 2j + r of the sums belongs to output r of the block.
template <int R, int C>
__attribute__((target("avx2,fma,f16c"))) inline __m128 pairInputs(const float* x, int64_t i0, int64_t i1) {
  if (C == 2)
    return _mm_movelh_ps(_mm_castpd_ps(_mm_load_sd(reinterpret_cast<const double*>(x + i0 * 2))),
                         _mm_castpd_ps(_mm_load_sd(reinterpret_cast<const double*>(x + i1 * 2))));
  return _mm_setr_ps(x[i0], x[i0], x[i1], x[i1]);
}

template <int R, int C, typename V, typename I>
__attribute__((target("avx2,fma,f16c"))) void bsrPairAvx2(const float* x, const int32_t* indptr, const I* indices,
                                                          const V* values, float* y, int b0, int b1) {
  static_assert(R * C == 2, "blocks of two values");
  for (int br = b0; br < b1; br++) {
    const int32_t kStart = indptr[br], kEnd = indptr[br + 1];
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    int32_t k = kStart;
    for (; k + 8 <= kEnd; k += 8) {
      const __m256 x0 = _mm256_set_m128(pairInputs<R, C>(x, indices[k + 2], indices[k + 3]),
                                        pairInputs<R, C>(x, indices[k], indices[k + 1]));
      const __m256 x1 = _mm256_set_m128(pairInputs<R, C>(x, indices[k + 6], indices[k + 7]),
                                        pairInputs<R, C>(x, indices[k + 4], indices[k + 5]));
      a0 = _mm256_fmadd_ps(load8(values + static_cast<int64_t>(k) * 2), x0, a0);
      a1 = _mm256_fmadd_ps(load8(values + static_cast<int64_t>(k + 4) * 2), x1, a1);
    }
    alignas(32) float l[8];
    _mm256_store_ps(l, _mm256_add_ps(a0, a1));
    float s0 = (l[0] + l[2]) + (l[4] + l[6]), s1 = (l[1] + l[3]) + (l[5] + l[7]);
    for (; k < kEnd; k++) {
      const V* block = values + static_cast<int64_t>(k) * 2;
      const float* xs = x + static_cast<int64_t>(indices[k]) * C;
      s0 += valueAtAvx(block, 0) * xs[0];
      s1 += valueAtAvx(block, 1) * xs[C - 1];
    }
    if (R == 1) {
      y[br] = s0 + s1;
    } else {
      y[static_cast<int64_t>(br) * 2] = s0;
      y[static_cast<int64_t>(br) * 2 + 1] = s1;
    }
  }
}

// One block's R x C values times its C runs of x^T (NB registers each), into the sums a.
template <int R, int C, int NB, int NA, typename V, typename I>
__attribute__((target("avx2,fma,f16c"))) inline void smallBlock(__m256 (&a)[R][NA][NB], const float* xt,
                                                                int64_t stride, const I* indices, const V* values,
                                                                int32_t k, int u, int64_t b) {
  const float* xs = xt + static_cast<int64_t>(indices[k]) * C * stride + b;
  const V* w = values + static_cast<int64_t>(k) * R * C;
  for (int c = 0; c < C; c++) {
    __m256 xv[NB];
    for (int n = 0; n < NB; n++) xv[n] = _mm256_loadu_ps(xs + c * stride + 8 * n);
    for (int r = 0; r < R; r++) {
      const __m256 v = _mm256_set1_ps(valueAtAvx(w, r * C + c));
      for (int n = 0; n < NB; n++) a[r][(u * C + c) % NA][n] = _mm256_fmadd_ps(v, xv[n], a[r][(u * C + c) % NA][n]);
    }
  }
}

// Blocks of at most four rows and four columns at batch > 1 (1x2, 2x1, 1x4, 4x1, 2x2, 2x4, 4x2,
// 4x4): x^T [cols, stride] (stride the batch rounded up to 16, zero padded), NB registers of 8 batch
// values per pass over a block row's blocks (16 batch values where at least 9 are left, so batch
// 16 reads the weights once). A block's C runs of x^T are read once for its R rows and its values
// broadcast one at a time; NA sums per output row and register (8 registers in all for R <= 2)
// hide the FMA latency, value (r, c) of the u-th block of an unrolled step going to sum
// (u * C + c) % NA of row r.
template <int R, int C, int NB, typename V, typename I>
__attribute__((target("avx2,fma,f16c"))) inline void smallBlockRow(const float* xt, int64_t stride, int batch,
                                                                   int32_t kStart, int32_t kEnd, const I* indices,
                                                                   const V* values, int rows, float* y, int br,
                                                                   int64_t b) {
  constexpr int NA = (R >= 4 ? 2 : 8 / R) / NB;
  constexpr int U = NA >= C ? NA / C : 1;
  __m256 a[R][NA][NB];
  for (int r = 0; r < R; r++)
    for (int j = 0; j < NA; j++)
      for (int n = 0; n < NB; n++) a[r][j][n] = _mm256_setzero_ps();
  int32_t k = kStart;
  for (; k + U <= kEnd; k += U)
    for (int u = 0; u < U; u++) smallBlock<R, C, NB, NA>(a, xt, stride, indices, values, k + u, u, b);
  for (; k < kEnd; k++) smallBlock<R, C, NB, NA>(a, xt, stride, indices, values, k, 0, b);
  for (int r = 0; r < R; r++)
    for (int n = 0; n < NB; n++) {
      for (int w = NA; w > 1; w /= 2)
        for (int j = 0; j < w / 2; j++) a[r][j][n] = _mm256_add_ps(a[r][j][n], a[r][j + w / 2][n]);
      alignas(32) float l[8];
      _mm256_store_ps(l, a[r][0][n]);
      const int64_t b0 = b + 8 * n;
      const int nb = batch - b0 < 8 ? static_cast<int>(batch - b0) : 8;
      float* yr = y + b0 * rows + static_cast<int64_t>(br) * R + r;
      for (int j = 0; j < nb; j++) yr[static_cast<int64_t>(j) * rows] = l[j];
    }
}

template <int R, int C, typename V, typename I>
void bsrSmallBatchAvx2(const float* xt, int64_t stride, int batch, const int32_t* indptr, const I* indices,
                       const V* values, int rows, float* y, int b0, int b1) {
  static_assert(R <= 4 && C <= 4, "blocks of at most 4 x 4");
  for (int br = b0; br < b1; br++) {
    const int32_t kStart = indptr[br], kEnd = indptr[br + 1];
    for (int64_t b = 0; b < batch; b += batch - b > 8 ? 16 : 8) {
      if (batch - b > 8)
        smallBlockRow<R, C, 2>(xt, stride, batch, kStart, kEnd, indices, values, rows, y, br, b);
      else
        smallBlockRow<R, C, 1>(xt, stride, batch, kStart, kEnd, indices, values, rows, y, br, b);
    }
  }
}

// The blocks of at most 4 x 4 at batch > 1 on x^T; false for any other shape.
template <typename V, typename I>
bool bsrSmallBatch(const float* xt, int64_t stride, int batch, const int32_t* indptr, const I* indices,
                   const V* values, int R, int C, int rows, float* y, int b0, int b1) {
#define SK_SMALL_BATCH(RR, CC) \
  if (R == RR && C == CC) return bsrSmallBatchAvx2<RR, CC>(xt, stride, batch, indptr, indices, values, rows, y, b0, b1), true;
  SK_SMALL_BATCH(1, 2)
  SK_SMALL_BATCH(2, 1)
  SK_SMALL_BATCH(1, 4)
  SK_SMALL_BATCH(4, 1)
  SK_SMALL_BATCH(2, 2)
  SK_SMALL_BATCH(2, 4)
  SK_SMALL_BATCH(4, 2)
  SK_SMALL_BATCH(4, 4)
#undef SK_SMALL_BATCH
  return false;
}

// The blocks of two or four values at batch 1; false for any other shape.
template <typename V, typename I>
bool bsrSmall(const float* x, const int32_t* indptr, const I* indices, const V* values, int R, int C, float* y, int b0,
             int b1) {
  if (R == 1 && C == 4) bsrQuadAvx2<1, 4>(x, indptr, indices, values, y, b0, b1);
  else if (R == 4 && C == 1) bsrQuadAvx2<4, 1>(x, indptr, indices, values, y, b0, b1);
  else if (R == 2 && C == 2) bsrQuadAvx2<2, 2>(x, indptr, indices, values, y, b0, b1);
  else if (R == 1 && C == 2) bsrPairAvx2<1, 2>(x, indptr, indices, values, y, b0, b1);
  else if (R == 2 && C == 1) bsrPairAvx2<2, 1>(x, indptr, indices, values, y, b0, b1);
  else return false;
  return true;
}
#endif

template <typename V, typename I>
void runBsr(const float* x, int batch, int cols, const int32_t* indptr, const I* indices, const V* values,
            int blockRowCount, int R, int C, int rows, const float* bias, float* y) {
#ifdef SK_X86
  int64_t nnz = static_cast<int64_t>(indptr[blockRowCount] - indptr[0]) * R * C;
  const bool small = C % 8 != 0 && !(C == 1 && R % 8 == 0);
  // Small blocks at batch > 1 read x^T (rows padded to 16, two registers of 8 batch values).
  const int64_t stride = (batch + 15) / 16 * 16;
  std::unique_ptr<float[]> xt;
  if (small && batch > 1) xt = transposeX(x, batch, cols, stride);
  auto ranges = splitRows(blockRowCount, indptr, 0, partsFor(nnz * batch, pool->threads()));
  pool->run(static_cast<int>(ranges.size()), [&](int t) {
    const int r0 = ranges[t].r0, r1 = ranges[t].r1;
    if (C % 8 == 0)
      bsrWideAvx2(x, batch, cols, indptr, indices, values, R, C, rows, y, r0, r1);
    else if (C == 1 && R % 8 == 0)
      bsrTallAvx2(x, batch, cols, indptr, indices, values, R, rows, y, r0, r1);
    else if (batch == 1)
      bsrSmall(x, indptr, indices, values, R, C, y, r0, r1);
    else
      bsrSmallBatch(xt.get(), stride, batch, indptr, indices, values, R, C, rows, y, r0, r1);
  });
  addBias(y, batch, rows, bias);
#endif
}

}  // namespace

// linearBsr(x, batch, cols, indptr, indices, u16, values, f16, blockRows, blockCols, rows, bias | null, out):
// AVX2 only; blockCols a multiple of 8, or 1 with blockRows a multiple of 8, or blocks of at most 4 x 4
// (at batch 1 only those of two or four values: 1x2, 2x1, 1x4, 4x1, 2x2).
Napi::Value LinearBsr(const Napi::CallbackInfo& info) {
  std::lock_guard<std::mutex> lock(callMutex);
  const float* x = dataOf<float>(info[0]);
  int batch = info[1].As<Napi::Number>().Int32Value();
  int cols = info[2].As<Napi::Number>().Int32Value();
  const int32_t* indptr = dataOf<int32_t>(info[3]);
  bool u16 = info[5].As<Napi::Boolean>().Value();
  bool f16 = info[7].As<Napi::Boolean>().Value();
  int R = info[8].As<Napi::Number>().Int32Value();
  int C = info[9].As<Napi::Number>().Int32Value();
  int rows = info[10].As<Napi::Number>().Int32Value();
  const float* bias = dataOf<float>(info[11]);
  float* y = dataOf<float>(info[12]);
  int n = rows / R;
  if (u16) {
    auto idx = dataOf<uint16_t>(info[4]);
    if (f16) runBsr(x, batch, cols, indptr, idx, dataOf<uint16_t>(info[6]), n, R, C, rows, bias, y);
    else runBsr(x, batch, cols, indptr, idx, dataOf<float>(info[6]), n, R, C, rows, bias, y);
  } else {
    auto idx = dataOf<int32_t>(info[4]);
    if (f16) runBsr(x, batch, cols, indptr, idx, dataOf<uint16_t>(info[6]), n, R, C, rows, bias, y);
    else runBsr(x, batch, cols, indptr, idx, dataOf<float>(info[6]), n, R, C, rows, bias, y);
  }
  return info.Env().Undefined();
}

}  // namespace sk
