// What the linear kernels share: f16 decoding, the AVX2 and AVX-512 helpers, and splitting rows over
// the pool.
#pragma once
#include <cstdint>
#include <cstring>
#include <vector>

#include "common.h"

namespace sk {

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

// ---- AVX-512 (F, BW, VL, DQ) kernels, where the CPU has them ----
#define SK_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")))

SK_AVX512 inline __m512 load16(const float* p) { return _mm512_loadu_ps(p); }
SK_AVX512 inline __m512 load16(const uint16_t* p) {
  return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}
SK_AVX512 inline __m512 broadcast16(const float* v, int64_t i) { return _mm512_set1_ps(v[i]); }
SK_AVX512 inline __m512 broadcast16(const uint16_t* v, int64_t i) { return _mm512_set1_ps(_cvtsh_ss(v[i])); }
#endif

struct Range {
  int r0, r1;
};

// Split rows into at most `parts` ranges of about equal work (nonzeros, or rows when dense).
std::vector<Range> splitRows(int rows, const int32_t* indptr, int64_t rowLength, int parts);

// y [batch, rows] += bias (when not null).
void addBias(float* y, int batch, int rows, const float* bias);

}  // namespace sk
