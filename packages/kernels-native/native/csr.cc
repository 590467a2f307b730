// Compressed rows (CSR, and N:M / ELL as rows of fixed length): batch 1 reads eight inputs by
// index at a time; wider batches read x transposed, one contiguous run of batch values per nonzero.
#include "simd.h"

namespace sk {
namespace {

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
#endif

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

}  // namespace

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

}  // namespace sk
