// Softmax attention for one key/value head's group of query heads, reading only the key rows each
// query may read: the rows are given as [start, end) segments per query (worked out from the mask on
// the JavaScript side). Every head of a query is handled together, so each key and value row is read
// once per query, in tiles with a running max per head (online softmax). A query is split into parts
// over its rows when there are fewer queries than threads (decode); a part keeps a partial softmax
// per head (max, sum, weighted values), merged at the end in double. Scores are f32 dot products.
#include <cmath>
#include <vector>

#include "common.h"

namespace sk {
namespace {

struct Partial {
  float max;
  float sum;
};

#ifdef SK_X86
__attribute__((target("avx2,fma"))) float dotAvx2(const float* a, const float* b, int n) {
  __m256 acc0 = _mm256_setzero_ps();
  __m256 acc1 = _mm256_setzero_ps();
  int d = 0;
  for (; d + 16 <= n; d += 16) {
    acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + d), _mm256_loadu_ps(b + d), acc0);
    acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + d + 8), _mm256_loadu_ps(b + d + 8), acc1);
  }
  for (; d + 8 <= n; d += 8) acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + d), _mm256_loadu_ps(b + d), acc0);
  acc0 = _mm256_add_ps(acc0, acc1);
  __m128 lo = _mm_add_ps(_mm256_castps256_ps128(acc0), _mm256_extractf128_ps(acc0, 1));
  lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
  lo = _mm_add_ss(lo, _mm_shuffle_ps(lo, lo, 1));
  float s = _mm_cvtss_f32(lo);
  for (; d < n; d++) s += a[d] * b[d];
  return s;
}

__attribute__((target("avx2,fma"))) void axpyAvx2(float w, const float* x, float* y, int n) {
  __m256 wv = _mm256_set1_ps(w);
  int d = 0;
  for (; d + 8 <= n; d += 8) _mm256_storeu_ps(y + d, _mm256_fmadd_ps(wv, _mm256_loadu_ps(x + d), _mm256_loadu_ps(y + d)));
  for (; d < n; d++) y[d] += w * x[d];
}
#endif

float dotPortable(const float* a, const float* b, int n) {
  float s = 0;
  for (int d = 0; d < n; d++) s += a[d] * b[d];
  return s;
}

void axpyPortable(float w, const float* x, float* y, int n) {
  for (int d = 0; d < n; d++) y[d] += w * x[d];
}

// The rows [from, to) of a query's rows (counted through its segments), visited in order.
template <typename F>
void forRows(const int32_t* seg, int pairs, int64_t from, int64_t to, F&& f) {
  int64_t seen = 0;
  for (int g = 0; g < pairs && seen < to; g++) {
    int64_t a = seg[2 * g], b = seg[2 * g + 1];
    int64_t len = b - a;
    int64_t lo = from > seen ? from - seen : 0;
    int64_t hi = to - seen < len ? to - seen : len;
    for (int64_t k = lo; k < hi; k++) f(a + k);
    seen += len;
  }
}

constexpr int TILE = 64;

inline float dot(bool avx, const float* a, const float* b, int n) {
#ifdef SK_X86
  if (avx) return dotAvx2(a, b, n);
#endif
  return dotPortable(a, b, n);
}

inline void axpy(bool avx, float w, const float* x, float* y, int n) {
#ifdef SK_X86
  if (avx) return axpyAvx2(w, x, y, n);
#endif
  axpyPortable(w, x, y, n);
}

// One part of one query: the partial softmaxes of every head's (scaled) query `qs` [heads, dim] over
// rows [from, to) of the query's rows, in tiles of TILE rows: each key and value row is read once
// for all heads, and each head keeps a running max that rescales what it has summed so far.
void attendPart(const float* qs, int heads, const float* keys, const float* values, int dim, const int32_t* seg,
                int pairs, int64_t from, int64_t to, Partial* partial, float* acc, float* scores) {
  const bool avx = useAvx2;
  for (int h = 0; h < heads; h++) partial[h] = {-INFINITY, 0};
  for (int64_t i = 0; i < static_cast<int64_t>(heads) * dim; i++) acc[i] = 0;
  int64_t tile[TILE];
  int n = 0;
  auto flush = [&]() {
    for (int i = 0; i < n; i++) {
      const float* k = keys + tile[i] * dim;
      for (int h = 0; h < heads; h++) scores[h * TILE + i] = dot(avx, qs + h * dim, k, dim);
    }
    for (int h = 0; h < heads; h++) {
      float* s = scores + h * TILE;
      float max = partial[h].max;
      for (int i = 0; i < n; i++) max = s[i] > max ? s[i] : max;
      if (max > partial[h].max) {
        float f = partial[h].max == -INFINITY ? 0.0f : std::exp(partial[h].max - max);
        partial[h].sum *= f;
        for (int d = 0; d < dim; d++) acc[h * dim + d] *= f;
        partial[h].max = max;
      }
      for (int i = 0; i < n; i++) {
        s[i] = std::exp(s[i] - max);
        partial[h].sum += s[i];
      }
    }
    for (int i = 0; i < n; i++) {
      const float* v = values + tile[i] * dim;
      for (int h = 0; h < heads; h++) axpy(avx, scores[h * TILE + i], v, acc + h * dim, dim);
    }
    n = 0;
  };
  forRows(seg, pairs, from, to, [&](int64_t row) {
    tile[n++] = row;
    if (n == TILE) flush();
  });
  if (n > 0) flush();
}

}  // namespace

Napi::Value Attend(const Napi::CallbackInfo& info) {
  std::lock_guard<std::mutex> lock(callMutex);
  const float* q = dataOf<float>(info[0]);
  int heads = info[1].As<Napi::Number>().Int32Value();
  int seq = info[2].As<Napi::Number>().Int32Value();
  int dim = info[3].As<Napi::Number>().Int32Value();
  const float* keys = dataOf<float>(info[4]);
  const float* values = dataOf<float>(info[5]);
  const int32_t* segments = dataOf<int32_t>(info[6]);
  const int32_t* offsets = dataOf<int32_t>(info[7]);
  float scale = static_cast<float>(info[8].As<Napi::Number>().DoubleValue());
  float* out = dataOf<float>(info[9]);

  // Rows each query reads, and the work in all.
  std::vector<int64_t> count(seq, 0);
  int64_t work = 0;
  for (int s = 0; s < seq; s++) {
    for (int g = offsets[s]; g < offsets[s + 1]; g++) count[s] += segments[2 * g + 1] - segments[2 * g];
    work += count[s] * heads * dim * 2;
  }
  const int threads = pool->threads();
  int64_t maxCount = 0;
  for (int s = 0; s < seq; s++) maxCount = count[s] > maxCount ? count[s] : maxCount;
  // Parts per query: enough tasks for the pool when there are few queries (decode), each part
  // TILE rows or more.
  int target = partsFor(work, threads);
  int parts = 1;
  if (target > 1 && seq < 2 * threads) {
    parts = (2 * threads + seq - 1) / seq;
    int64_t byRows = maxCount / TILE;
    if (parts > byRows) parts = static_cast<int>(byRows < 1 ? 1 : byRows);
  }
  const int tasks = seq * parts;
  const int64_t hd = static_cast<int64_t>(heads) * dim;
  std::vector<Partial> partial(static_cast<size_t>(tasks) * heads);
  std::vector<float> accs(static_cast<size_t>(tasks) * hd);
  auto runTasks = [&](int t0, int t1) {
    std::vector<float> qs(hd), scores(static_cast<size_t>(heads) * TILE);
    for (int t = t0; t < t1; t++) {
      int s = t / parts, part = t % parts;
      for (int h = 0; h < heads; h++) {
        const float* qRow = q + (static_cast<int64_t>(h) * seq + s) * dim;
        for (int d = 0; d < dim; d++) qs[h * dim + d] = qRow[d] * scale;
      }
      int64_t n = count[s];
      attendPart(qs.data(), heads, keys, values, dim, segments + 2 * offsets[s], offsets[s + 1] - offsets[s],
                 n * part / parts, n * (part + 1) / parts, partial.data() + static_cast<int64_t>(t) * heads,
                 accs.data() + t * hd, scores.data());
    }
  };
  if (target <= 1) {
    runTasks(0, tasks);
  } else {
    int chunks = target > tasks ? tasks : target;
    pool->run(chunks, [&](int c) {
      runTasks(static_cast<int>(static_cast<int64_t>(tasks) * c / chunks),
               static_cast<int>(static_cast<int64_t>(tasks) * (c + 1) / chunks));
    });
  }
  // Merge each (head, query)'s parts: out = sum_p acc_p e^(m_p - M) / sum_p l_p e^(m_p - M).
  std::vector<double> acc(dim);
  for (int s = 0; s < seq; s++) {
    for (int h = 0; h < heads; h++) {
      float* o = out + (static_cast<int64_t>(h) * seq + s) * dim;
      double max = -INFINITY;
      for (int p = 0; p < parts; p++) {
        float m = partial[(static_cast<int64_t>(s) * parts + p) * heads + h].max;
        max = m > max ? m : max;
      }
      if (max == -INFINITY) {
        // A query that reads no key gets zeros (FlexAttention's convention for fully masked rows).
        for (int d = 0; d < dim; d++) o[d] = 0;
        continue;
      }
      double sum = 0;
      for (int d = 0; d < dim; d++) acc[d] = 0;
      for (int p = 0; p < parts; p++) {
        int64_t t = static_cast<int64_t>(s) * parts + p;
        const Partial& part = partial[t * heads + h];
        if (part.max == -INFINITY) continue;
        double f = std::exp(static_cast<double>(part.max) - max);
        sum += part.sum * f;
        const float* a = accs.data() + t * hd + static_cast<int64_t>(h) * dim;
        for (int d = 0; d < dim; d++) acc[d] += a[d] * f;
      }
      for (int d = 0; d < dim; d++) o[d] = static_cast<float>(acc[d] / sum);
    }
  }
  return info.Env().Undefined();
}

}  // namespace sk
