// Structured sparsity without gathers: 2:4 through permutes (in-lane on AVX2, two-source on
// AVX-512), and blocks (BSR).
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

template <typename V, typename I>
void runBsr(const float* x, int batch, int cols, const int32_t* indptr, const I* indices, const V* values,
            int blockRowCount, int R, int C, int rows, const float* bias, float* y) {
#ifdef SK_X86
  int64_t nnz = static_cast<int64_t>(indptr[blockRowCount] - indptr[0]) * R * C;
  auto ranges = splitRows(blockRowCount, indptr, 0, partsFor(nnz * batch, pool->threads()));
  pool->run(static_cast<int>(ranges.size()), [&](int t) {
    if (C == 1)
      bsrTallAvx2(x, batch, cols, indptr, indices, values, R, rows, y, ranges[t].r0, ranges[t].r1);
    else
      bsrWideAvx2(x, batch, cols, indptr, indices, values, R, C, rows, y, ranges[t].r0, ranges[t].r1);
  });
  addBias(y, batch, rows, bias);
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

// linearBsr(x, batch, cols, indptr, indices, u16, values, f16, blockRows, blockCols, rows, bias | null, out):
// AVX2 only; blockCols a multiple of 8, or 1 with blockRows a multiple of 8.
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
