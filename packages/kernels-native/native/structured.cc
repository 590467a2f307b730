// 2:4 without gathers: permutes (in-lane on AVX2, two-source on AVX-512) at batch 1.
#include "simd.h"

namespace sk {
namespace {

#ifdef SK_X86
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

// 2:4 at batch 1 on AVX-512: sixteen slots cover 32 inputs, and one two-source permute (vpermt2ps,
// which reads the low 5 bits of each index) picks them from x as it is: slot j's index is
// 4 (j / 2) + its 2-bit position, the positions of 16 slots being one 32-bit word.
SK_AVX512 inline __m512 nm24Gather16(const float* x, uint32_t bits) {
  const __m512i shifts = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i base = _mm512_setr_epi32(0, 0, 4, 4, 8, 8, 12, 12, 16, 16, 20, 20, 24, 24, 28, 28);
  const __m512i position = _mm512_and_si512(_mm512_srlv_epi32(_mm512_set1_epi32(static_cast<int>(bits)), shifts),
                                            _mm512_set1_epi32(3));
  return _mm512_permutex2var_ps(_mm512_loadu_ps(x), _mm512_add_epi32(base, position), _mm512_loadu_ps(x + 16));
}

template <typename V>
SK_AVX512 void nm24RowsAvx512(const float* x, const V* values, const uint8_t* positions, int cols, float* y, int r0,
                              int r1) {
  const int64_t slots = cols / 2;
  const int64_t main = slots & ~static_cast<int64_t>(15);
  for (int r = r0; r < r1; r++) {
    const V* v = values + static_cast<int64_t>(r) * slots;
    const uint8_t* p = positions + static_cast<int64_t>(r) * cols / 8;
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    int64_t k = 0;
    uint32_t bits, next;
    for (; k + 32 <= main; k += 32) {
      std::memcpy(&bits, p + k / 4, 4);
      std::memcpy(&next, p + k / 4 + 4, 4);
      a0 = _mm512_fmadd_ps(load16(v + k), nm24Gather16(x + 2 * k, bits), a0);
      a1 = _mm512_fmadd_ps(load16(v + k + 16), nm24Gather16(x + 2 * k + 32, next), a1);
    }
    if (k < main) {
      std::memcpy(&bits, p + k / 4, 4);
      a0 = _mm512_fmadd_ps(load16(v + k), nm24Gather16(x + 2 * k, bits), a0);
      k += 16;
    }
    float s = _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
    for (; k < slots; k++) {
      int position = (p[k / 4] >> (2 * (k & 3))) & 3;
      s += valueAtAvx(v, k) * x[(k / 2) * 4 + position];
    }
    y[r] = s;
  }
}

#endif

template <typename V>
void runNm24(const float* x, const V* values, const uint8_t* positions, int rows, int cols, const float* bias,
             float* y) {
#ifdef SK_X86
  auto ranges = splitRows(rows, nullptr, cols / 2, partsFor(static_cast<int64_t>(rows) * cols / 2, pool->threads()));
  if (useAvx512) {
    pool->run(static_cast<int>(ranges.size()),
              [&](int t) { nm24RowsAvx512(x, values, positions, cols, y, ranges[t].r0, ranges[t].r1); });
    addBias(y, 1, rows, bias);
    return;
  }
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
  pool->run(static_cast<int>(ranges.size()), [&](int t) {
    nm24RowsAvx2(x, xr.data(), values, positions, rows, cols, y, ranges[t].r0, ranges[t].r1);
  });
  addBias(y, 1, rows, bias);
#endif
}

}  // namespace

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

}  // namespace sk
