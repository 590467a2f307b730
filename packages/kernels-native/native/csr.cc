// Compressed rows (CSR, and N:M / ELL as rows of fixed length): batch 1 reads eight inputs by index
// at a time (scalar loads: on the AMD cores measured both vgatherdps and its 16-wide AVX-512 form
// are slower); wider batches read x transposed, one contiguous run of batch values per nonzero, and
// from WIDE_MIN_BATCH in panels of x^T that stay in cache (AVX2 or AVX-512 registers).
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
__attribute__((target("avx2,fma,f16c"))) void csrRowsAvx2(const float* x, const float* xt, int batch, int64_t stride,
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
    // Batch columns 16 (then 8) at a time in registers, over x^T rows of `stride` (the batch rounded
    // up to 8, zero padded, so that batches 2..7 run in registers too).
    int b = 0;
    for (; b + 16 <= stride; b += 16) {
      __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), c0 = _mm256_setzero_ps(),
             c1 = _mm256_setzero_ps();
      int64_t k = start;
      for (; k + 2 <= end; k += 2) {
        __m256 v = _mm256_set1_ps(valueAtAvx(values, k));
        __m256 u = _mm256_set1_ps(valueAtAvx(values, k + 1));
        const float* xr = xt + static_cast<int64_t>(indices[k]) * stride + b;
        const float* xq = xt + static_cast<int64_t>(indices[k + 1]) * stride + b;
        a0 = _mm256_fmadd_ps(v, _mm256_loadu_ps(xr), a0);
        a1 = _mm256_fmadd_ps(v, _mm256_loadu_ps(xr + 8), a1);
        c0 = _mm256_fmadd_ps(u, _mm256_loadu_ps(xq), c0);
        c1 = _mm256_fmadd_ps(u, _mm256_loadu_ps(xq + 8), c1);
      }
      if (k < end) {
        __m256 v = _mm256_set1_ps(valueAtAvx(values, k));
        const float* xr = xt + static_cast<int64_t>(indices[k]) * stride + b;
        a0 = _mm256_fmadd_ps(v, _mm256_loadu_ps(xr), a0);
        a1 = _mm256_fmadd_ps(v, _mm256_loadu_ps(xr + 8), a1);
      }
      _mm256_storeu_ps(acc + b, _mm256_add_ps(a0, c0));
      _mm256_storeu_ps(acc + b + 8, _mm256_add_ps(a1, c1));
    }
    for (; b + 8 <= stride; b += 8) {
      // Four independent sums over the nonzeros: one FMA chain would wait on its own latency.
      __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(),
             a3 = _mm256_setzero_ps();
      const float* xb = xt + b;
      int64_t k = start;
      for (; k + 4 <= end; k += 4) {
        a0 = _mm256_fmadd_ps(_mm256_set1_ps(valueAtAvx(values, k)),
                             _mm256_loadu_ps(xb + static_cast<int64_t>(indices[k]) * stride), a0);
        a1 = _mm256_fmadd_ps(_mm256_set1_ps(valueAtAvx(values, k + 1)),
                             _mm256_loadu_ps(xb + static_cast<int64_t>(indices[k + 1]) * stride), a1);
        a2 = _mm256_fmadd_ps(_mm256_set1_ps(valueAtAvx(values, k + 2)),
                             _mm256_loadu_ps(xb + static_cast<int64_t>(indices[k + 2]) * stride), a2);
        a3 = _mm256_fmadd_ps(_mm256_set1_ps(valueAtAvx(values, k + 3)),
                             _mm256_loadu_ps(xb + static_cast<int64_t>(indices[k + 3]) * stride), a3);
      }
      for (; k < end; k++)
        a0 = _mm256_fmadd_ps(_mm256_set1_ps(valueAtAvx(values, k)),
                             _mm256_loadu_ps(xb + static_cast<int64_t>(indices[k]) * stride), a0);
      _mm256_storeu_ps(acc + b, _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    }
    for (int b = 0; b < batch; b++) y[static_cast<int64_t>(b) * rows + r] = acc[b];
  }
}

// Wide batches, tiled: x^T [cols, stride] (stride = the batch rounded up to a whole register, the
// padding zeros) is read in panels of columns small enough to stay in the core's L2, and rows in
// blocks whose sums [rows, stride] stay in L1; each row's nonzeros inside a panel are taken from a
// cursor (columns are sorted within a row), and each nonzero feeds up to 8 registers of batch
// values. Without the panels every nonzero's run of x^T comes from the last-level cache.
constexpr int WIDE_ROW_BLOCK = 32;
constexpr int64_t WIDE_PANEL_BYTES = 256 * 1024;

inline int widePanelColumns(int stride) {
  int64_t c = WIDE_PANEL_BYTES / (4 * static_cast<int64_t>(stride));
  c = c < 64 ? 64 : c - c % 64;
  return static_cast<int>(c);
}

// One register width's worth of kernels: W floats per register, NV registers per pass.
template <int NV, typename V, typename I>
__attribute__((target("avx2,fma,f16c"))) inline int64_t wideStepAvx2(const float* xt, int64_t stride,
                                                                       const I* indices, const V* values,
                                                                       int64_t k, int64_t end, int32_t panelEnd,
                                                                       float* acc) {
  __m256 a[NV];
  for (int j = 0; j < NV; j++) a[j] = _mm256_loadu_ps(acc + 8 * j);
  for (; k < end && indices[k] < panelEnd; k++) {
    const __m256 v = _mm256_set1_ps(valueAtAvx(values, k));
    const float* xr = xt + static_cast<int64_t>(indices[k]) * stride;
    for (int j = 0; j < NV; j++) a[j] = _mm256_fmadd_ps(v, _mm256_loadu_ps(xr + 8 * j), a[j]);
  }
  for (int j = 0; j < NV; j++) _mm256_storeu_ps(acc + 8 * j, a[j]);
  return k;
}

template <int NV, typename V, typename I>
SK_AVX512 inline int64_t wideStepAvx512(const float* xt, int64_t stride, const I* indices, const V* values, int64_t k,
                                        int64_t end, int32_t panelEnd, float* acc) {
  __m512 a[NV];
  for (int j = 0; j < NV; j++) a[j] = _mm512_loadu_ps(acc + 16 * j);
  for (; k < end && indices[k] < panelEnd; k++) {
    const __m512 v = broadcast16(values, k);
    const float* xr = xt + static_cast<int64_t>(indices[k]) * stride;
    for (int j = 0; j < NV; j++) a[j] = _mm512_fmadd_ps(v, _mm512_loadu_ps(xr + 16 * j), a[j]);
  }
  for (int j = 0; j < NV; j++) _mm512_storeu_ps(acc + 16 * j, a[j]);
  return k;
}

// The step kernels of one instruction set, by the number of registers per pass.
struct Avx2Steps {
  static constexpr int WIDTH = 8;
  template <int NV, typename V, typename I>
  static int64_t step(const float* xt, int64_t stride, const I* indices, const V* values, int64_t k, int64_t end,
                      int32_t panelEnd, float* acc) {
    return wideStepAvx2<NV>(xt, stride, indices, values, k, end, panelEnd, acc);
  }
};
struct Avx512Steps {
  static constexpr int WIDTH = 16;
  template <int NV, typename V, typename I>
  static int64_t step(const float* xt, int64_t stride, const I* indices, const V* values, int64_t k, int64_t end,
                      int32_t panelEnd, float* acc) {
    return wideStepAvx512<NV>(xt, stride, indices, values, k, end, panelEnd, acc);
  }
};

// A row's nonzeros in [k, end) with columns below panelEnd, over batch values [0, stride) of acc,
// 8 registers per pass; returns where the row's cursor stops.
template <typename Steps, typename V, typename I>
int64_t wideRow(const float* xt, int64_t stride, const I* indices, const V* values, int64_t k, int64_t end,
                int32_t panelEnd, float* acc) {
  constexpr int W = Steps::WIDTH;
  int64_t stop = k;
  for (int64_t b = 0; b < stride; b += 8 * W) {
    const int64_t left = (stride - b) / W;
    const float* xb = xt + b;
    float* ab = acc + b;
    switch (left >= 8 ? 8 : left) {
      case 8: stop = Steps::template step<8>(xb, stride, indices, values, k, end, panelEnd, ab); break;
      case 7: stop = Steps::template step<7>(xb, stride, indices, values, k, end, panelEnd, ab); break;
      case 6: stop = Steps::template step<6>(xb, stride, indices, values, k, end, panelEnd, ab); break;
      case 5: stop = Steps::template step<5>(xb, stride, indices, values, k, end, panelEnd, ab); break;
      case 4: stop = Steps::template step<4>(xb, stride, indices, values, k, end, panelEnd, ab); break;
      case 3: stop = Steps::template step<3>(xb, stride, indices, values, k, end, panelEnd, ab); break;
      case 2: stop = Steps::template step<2>(xb, stride, indices, values, k, end, panelEnd, ab); break;
      default: stop = Steps::template step<1>(xb, stride, indices, values, k, end, panelEnd, ab); break;
    }
  }
  return stop;
}

// Rows [r0, r1) of y for a wide batch; acc holds WIDE_ROW_BLOCK x stride floats, cursor
// WIDE_ROW_BLOCK positions.
template <typename V, typename I>
void csrRowsWide(const float* xt, int batch, int64_t stride, int cols, const int32_t* indptr, int64_t rowLength,
                 const I* indices, const V* values, int rows, float* y, int r0, int r1, float* acc,
                 int64_t* cursor) {
  const int panel = widePanelColumns(static_cast<int>(stride));
  for (int rb = r0; rb < r1; rb += WIDE_ROW_BLOCK) {
    const int nr = r1 - rb < WIDE_ROW_BLOCK ? r1 - rb : WIDE_ROW_BLOCK;
    std::memset(acc, 0, sizeof(float) * nr * stride);
    for (int i = 0; i < nr; i++) cursor[i] = indptr ? indptr[rb + i] : (rb + i) * rowLength;
    for (int p0 = 0; p0 < cols; p0 += panel) {
      const int32_t panelEnd = cols - p0 > panel ? p0 + panel : cols;
      for (int i = 0; i < nr; i++) {
        const int64_t end = indptr ? indptr[rb + i + 1] : (rb + i + 1) * rowLength;
        const int64_t k = cursor[i];
        if (k == end || indices[k] >= panelEnd) continue;
        float* a = acc + i * stride;
        cursor[i] = useAvx512 ? wideRow<Avx512Steps>(xt, stride, indices, values, k, end, panelEnd, a)
                              : wideRow<Avx2Steps>(xt, stride, indices, values, k, end, panelEnd, a);
      }
    }
    for (int b = 0; b < batch; b++) {
      float* yb = y + static_cast<int64_t>(b) * rows + rb;
      for (int i = 0; i < nr; i++) yb[i] = acc[i * stride + b];
    }
  }
}

// Batches at least this wide run the tiled kernel (narrower ones hold the batch in registers).
constexpr int WIDE_MIN_BATCH = 24;
#endif

template <typename V, typename I>
void runCsr(const float* x, int batch, int cols, const int32_t* indptr, int64_t rowLength, const I* indices,
            const V* values, int rows, const float* bias, float* y) {
#ifdef SK_X86
  const bool wide = useAvx2 && batch >= WIDE_MIN_BATCH;
#else
  const bool wide = false;
#endif
  // x^T, each batch run padded to whole registers: 16 for the tiled kernel, 8 for the AVX2 rows.
  const int64_t stride = wide ? (batch + 15) / 16 * 16 : useAvx2 ? (batch + 7) / 8 * 8 : batch;
  std::unique_ptr<float[]> xt;
  if (batch > 1) xt = transposeX(x, batch, cols, stride);
  int64_t nnz = indptr ? indptr[rows] - indptr[0] : rowLength * rows;
  auto ranges = splitRows(rows, indptr, rowLength, partsFor(nnz * batch, pool->threads()));
  pool->run(static_cast<int>(ranges.size()), [&](int t) {
    const int r0 = ranges[t].r0, r1 = ranges[t].r1;
#ifdef SK_X86
    if (wide) {
      std::vector<float> acc(static_cast<size_t>(WIDE_ROW_BLOCK) * stride);
      std::vector<int64_t> cursor(WIDE_ROW_BLOCK);
      return csrRowsWide(xt.get(), batch, stride, cols, indptr, rowLength, indices, values, rows, y, r0, r1,
                         acc.data(), cursor.data());
    }
#endif
    std::vector<float> acc(batch > 1 ? stride : 1);
#ifdef SK_X86
    if (useAvx2)
      return csrRowsAvx2(x, xt.get(), batch, stride, indptr, rowLength, indices, values, rows, y, r0, r1, acc.data());
#endif
    csrRowsPortable(x, xt.get(), batch, indptr, rowLength, indices, values, rows, y, r0, r1, acc.data());
  });
  addBias(y, batch, rows, bias);
}

}  // namespace

// x^T [cols, stride] of x [batch, cols], each x^T row padded with zeros from batch to stride: in
// tiles of 16 columns x all batch rows (each x row read in runs, each x^T row written whole), split
// over the pool by columns.
std::unique_ptr<float[]> transposeX(const float* x, int batch, int cols, int64_t stride) {
  // Left uninitialised: every element, padding included, is written below.
  std::unique_ptr<float[]> xt(new float[static_cast<size_t>(stride) * cols]);
  const int tiles = (cols + 15) / 16;
  int parts = partsFor(static_cast<int64_t>(batch) * cols * 8, pool->threads());
  if (parts > tiles) parts = tiles;
  pool->run(parts, [&](int t) {
    float* out = xt.get();
    for (int tile = tiles * t / parts; tile < tiles * (t + 1) / parts; tile++) {
      const int c0 = tile * 16, c1 = c0 + 16 < cols ? c0 + 16 : cols;
      for (int c = c0; c < c1; c++)
        std::memset(out + static_cast<size_t>(c) * stride + batch, 0, sizeof(float) * (stride - batch));
      for (int b = 0; b < batch; b++) {
        const float* xb = x + static_cast<size_t>(b) * cols;
        for (int c = c0; c < c1; c++) out[static_cast<size_t>(c) * stride + b] = xb[c];
      }
    }
  });
  return xt;
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

}  // namespace sk
