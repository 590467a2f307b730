// Dense y = x W^T: AVX2 (two W rows x four batch rows in registers) and portable, and the system
// BLAS for wide f32 batches.
#include "simd.h"

namespace sk {
namespace {

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

#ifdef SK_X86
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
#endif

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

}  // namespace

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

}  // namespace sk
