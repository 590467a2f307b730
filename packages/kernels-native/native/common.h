// What the kernel files share: the thread pool, the one-call-at-a-time lock, the kernel choice,
// and reading typed arrays handed in from JavaScript.
#pragma once
#include <napi.h>

#include <cstdint>
#include <memory>
#include <mutex>

#include "pool.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define SK_X86 1
#endif

namespace sk {

extern std::unique_ptr<Pool> pool;
// One kernel call at a time per process (worker threads that load the addon share the pool).
extern std::mutex callMutex;
// Which kernels run (chosen at load from the CPU's features, or by useKernels): AVX2 + FMA + F16C
// where useAvx2, and where useAvx512 too (AVX-512 F, BW, VL, DQ) the AVX-512 ones that exist.
extern bool useAvx2;
extern bool useAvx512;

// How many tasks to split `work` multiply-adds into (one below ~64k, at most 4 per thread).
int partsFor(int64_t work, int threads);

// The data of a typed array (null for null / undefined).
template <typename T>
T* dataOf(const Napi::Value& v) {
  if (v.IsNull() || v.IsUndefined()) return nullptr;
  auto array = v.As<Napi::TypedArray>();
  return reinterpret_cast<T*>(static_cast<uint8_t*>(array.ArrayBuffer().Data()) + array.ByteOffset());
}

// x^T [cols, stride] of x [batch, cols], the padding (batch to stride) zeros, made over the pool (csr.cc).
std::unique_ptr<float[]> transposeX(const float* x, int batch, int cols, int64_t stride);

// A system BLAS loaded at run time (blas.cc): its name (null when none or disabled), switching it
// on and off (returns whether it runs), its threads, and y = x W^T on it (false when there is none).
const char* blasName();
bool useBlas(bool on);
void setBlasThreads(int threads);
bool blasLinear(const float* x, int batch, const float* w, int rows, int cols, float* y);
// Batches at least this wide run dense f32 products on the BLAS, where one loads.
constexpr int BLAS_MIN_BATCH = 16;

// The linear kernels' bindings (dense.cc, csr.cc, structured.cc, bsr.cc) and the gather GEMV (gather.cc).
Napi::Value LinearDense(const Napi::CallbackInfo& info);
Napi::Value LinearCsr(const Napi::CallbackInfo& info);
Napi::Value LinearNm24(const Napi::CallbackInfo& info);
Napi::Value LinearBsr(const Napi::CallbackInfo& info);
Napi::Value GatherGemv(const Napi::CallbackInfo& info);

// attend(q, heads, seq, dim, keys, values, segments, offsets, scale, out): see attention.cc.
Napi::Value Attend(const Napi::CallbackInfo& info);

}  // namespace sk
