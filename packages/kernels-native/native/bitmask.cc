// Bitmask weights at batch 1 (one bit per element, the nonzeros packed in row order): x is read as
// it is, in runs of 16 (AVX-512) or 8 (AVX2) inputs, and each run's packed values are spread to the
// positions of its set bits (AVX-512 vexpandps; AVX2 a permute from a 256-entry table), so the
// kernel needs no column indices and no gathers.
#include "simd.h"

namespace sk {
namespace {

inline int popcount(uint32_t v) { return __builtin_popcount(v); }

template <typename V>
float bitmaskRowTail(const float* x, const uint8_t* bits, const V* values, int c, int cols, int64_t* at) {
  float s = 0;
  for (; c < cols; c++)
    if ((bits[c >> 3] >> (c & 7)) & 1) s += valueAt(values, (*at)++) * x[c];
  return s;
}

#ifdef SK_X86
// For each byte of mask bits: the lane each of 8 outputs takes its value from (the rank of its bit
// among the set ones), and an all-ones lane where the bit is set.
struct ExpandTable {
  alignas(32) int32_t lanes[256][8];
  alignas(32) int32_t keep[256][8];
  ExpandTable() {
    for (int m = 0; m < 256; m++) {
      int rank = 0;
      for (int b = 0; b < 8; b++) {
        const bool on = (m >> b) & 1;
        lanes[m][b] = on ? rank : 0;
        keep[m][b] = on ? -1 : 0;
        rank += on;
      }
    }
  }
};
const ExpandTable expandTable;

// The first n of 8 values (n <= 8), the rest zeros; never reads past the n-th.
__attribute__((target("avx2,fma,f16c"))) inline __m256 loadFirst8(const float* p, int n, int64_t left) {
  if (left >= 8) return _mm256_loadu_ps(p);
  alignas(32) float t[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  for (int i = 0; i < n; i++) t[i] = p[i];
  return _mm256_load_ps(t);
}
__attribute__((target("avx2,fma,f16c"))) inline __m256 loadFirst8(const uint16_t* p, int n, int64_t left) {
  if (left >= 8) return load8(p);
  alignas(16) uint16_t t[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  for (int i = 0; i < n; i++) t[i] = p[i];
  return load8(t);
}

template <typename V>
__attribute__((target("avx2,fma,f16c"))) void bitmaskRowsAvx2(const float* x, const uint8_t* bitmask,
                                                              const int32_t* rowOffsets, const V* values,
                                                              int64_t total, int cols, float* y, int r0, int r1) {
  const int rowBytes = (cols + 7) / 8;
  for (int r = r0; r < r1; r++) {
    const uint8_t* bits = bitmask + static_cast<int64_t>(r) * rowBytes;
    int64_t at = rowOffsets[r];
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    int c = 0;
    for (; c + 16 <= cols; c += 16) {
      const int m0 = bits[c >> 3], m1 = bits[(c >> 3) + 1];
      const int n0 = popcount(m0), n1 = popcount(m1);
      __m256 v0 = loadFirst8(values + at, n0, total - at);
      v0 = _mm256_permutevar8x32_ps(v0, _mm256_load_si256(reinterpret_cast<const __m256i*>(expandTable.lanes[m0])));
      v0 = _mm256_and_ps(v0, _mm256_castsi256_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(expandTable.keep[m0]))));
      a0 = _mm256_fmadd_ps(v0, _mm256_loadu_ps(x + c), a0);
      at += n0;
      __m256 v1 = loadFirst8(values + at, n1, total - at);
      v1 = _mm256_permutevar8x32_ps(v1, _mm256_load_si256(reinterpret_cast<const __m256i*>(expandTable.lanes[m1])));
      v1 = _mm256_and_ps(v1, _mm256_castsi256_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(expandTable.keep[m1]))));
      a1 = _mm256_fmadd_ps(v1, _mm256_loadu_ps(x + c + 8), a1);
      at += n1;
    }
    float s = hsum(_mm256_add_ps(a0, a1));
    y[r] = s + bitmaskRowTail(x, bits, values, c, cols, &at);
  }
}

template <typename V>
SK_AVX512 void bitmaskRowsAvx512(const float* x, const uint8_t* bitmask, const int32_t* rowOffsets, const V* values,
                                 int cols, float* y, int r0, int r1) {
  const int rowBytes = (cols + 7) / 8;
  for (int r = r0; r < r1; r++) {
    const uint8_t* bits = bitmask + static_cast<int64_t>(r) * rowBytes;
    int64_t at = rowOffsets[r];
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    int c = 0;
    for (; c + 32 <= cols; c += 32) {
      uint16_t m0, m1;
      std::memcpy(&m0, bits + (c >> 3), 2);
      std::memcpy(&m1, bits + (c >> 3) + 2, 2);
      const int n0 = popcount(m0), n1 = popcount(m1);
      // The run's n values (a masked load reads no further), spread to the set bits' lanes.
      const __m512 v0 = _mm512_maskz_expand_ps(m0, load16Masked(values + at, static_cast<__mmask16>((1u << n0) - 1)));
      a0 = _mm512_fmadd_ps(v0, _mm512_loadu_ps(x + c), a0);
      at += n0;
      const __m512 v1 = _mm512_maskz_expand_ps(m1, load16Masked(values + at, static_cast<__mmask16>((1u << n1) - 1)));
      a1 = _mm512_fmadd_ps(v1, _mm512_loadu_ps(x + c + 16), a1);
      at += n1;
    }
    for (; c + 16 <= cols; c += 16) {
      uint16_t m0;
      std::memcpy(&m0, bits + (c >> 3), 2);
      const int n0 = popcount(m0);
      const __m512 v0 = _mm512_maskz_expand_ps(m0, load16Masked(values + at, static_cast<__mmask16>((1u << n0) - 1)));
      a0 = _mm512_fmadd_ps(v0, _mm512_loadu_ps(x + c), a0);
      at += n0;
    }
    float s = _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
    y[r] = s + bitmaskRowTail(x, bits, values, c, cols, &at);
  }
}
#endif

template <typename V>
void runBitmask(const float* x, const uint8_t* bitmask, const int32_t* rowOffsets, const V* values, int64_t total,
                int rows, int cols, const float* bias, float* y) {
#ifdef SK_X86
  // Equal rows per task: the kernel's work is its bits as much as its values.
  auto ranges = splitRows(rows, nullptr, cols, partsFor(static_cast<int64_t>(rows) * cols / 4, pool->threads()));
  pool->run(static_cast<int>(ranges.size()), [&](int t) {
    if (useAvx512) return bitmaskRowsAvx512(x, bitmask, rowOffsets, values, cols, y, ranges[t].r0, ranges[t].r1);
    bitmaskRowsAvx2(x, bitmask, rowOffsets, values, total, cols, y, ranges[t].r0, ranges[t].r1);
  });
  addBias(y, 1, rows, bias);
#endif
}

}  // namespace

// linearBitmask(x, bitmask, rowOffsets, values, f16, count, rows, cols, bias | null, out): batch 1, AVX2
// or AVX-512 only; rowOffsets[r] is where row r starts in values, which hold count values.
Napi::Value LinearBitmask(const Napi::CallbackInfo& info) {
  std::lock_guard<std::mutex> lock(callMutex);
  const float* x = dataOf<float>(info[0]);
  const uint8_t* bitmask = dataOf<uint8_t>(info[1]);
  const int32_t* rowOffsets = dataOf<int32_t>(info[2]);
  bool f16 = info[4].As<Napi::Boolean>().Value();
  int64_t count = info[5].As<Napi::Number>().Int64Value();
  int rows = info[6].As<Napi::Number>().Int32Value();
  int cols = info[7].As<Napi::Number>().Int32Value();
  const float* bias = dataOf<float>(info[8]);
  float* y = dataOf<float>(info[9]);
  if (f16) runBitmask(x, bitmask, rowOffsets, dataOf<uint16_t>(info[3]), count, rows, cols, bias, y);
  else runBitmask(x, bitmask, rowOffsets, dataOf<float>(info[3]), count, rows, cols, bias, y);
  return info.Env().Undefined();
}

}  // namespace sk
