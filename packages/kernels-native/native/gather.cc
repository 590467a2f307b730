// The activation-sparsity gather GEMV: only the columns of W^T whose inputs are active.
#include "simd.h"

namespace sk {
namespace {

#ifdef SK_X86
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
#endif

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

}  // namespace

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

}  // namespace sk
