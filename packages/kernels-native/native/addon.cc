// The addon: the thread pool, the kernel choice, row splitting, and the exports. The kernels behind
// the backend contract's linear op, y [batch, rows] = x [batch, cols] W^T (+ bias), live in dense.cc,
// csr.cc (CSR, and N:M / ELL passed as rows of fixed length), structured.cc (2:4) and bsr.cc; f32 or
// f16 values (F16C), i32 or u16 column indices. Each kernel has an AVX2+FMA build and most a
// portable one, and some an AVX-512 one, chosen once at load from the CPU's features. Rows are split
// over a thread pool by nonzeros. The TypeScript side validates shapes and indices once per matrix;
// these loops trust them.
#include <napi.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#ifdef __linux__
#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#endif

#include "simd.h"

namespace sk {
std::unique_ptr<Pool> pool;
std::mutex callMutex;
bool useAvx2 = false;
bool useAvx512 = false;

int partsFor(int64_t work, int threads) {
  // Below ~64k multiply-adds a call is faster on one thread.
  int64_t parts = work / 65536;
  if (parts < 1) parts = 1;
  if (parts > threads * 4) parts = threads * 4;
  return static_cast<int>(parts);
}
#ifdef SK_X86
bool cpuHasAvx2() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
}
bool cpuHasAvx512() {
  return cpuHasAvx2() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
}
#endif

const char* kernelsName() { return useAvx512 ? "avx512" : useAvx2 ? "avx2" : "portable"; }
}  // namespace sk

namespace sk {

// Split rows into at most `parts` ranges of about equal work (nonzeros, or rows when dense).
std::vector<Range> splitRows(int rows, const int32_t* indptr, int64_t rowLength, int parts) {
  std::vector<Range> out;
  if (rows <= 0) return out;
  if (parts < 1) parts = 1;
  if (parts > rows) parts = rows;
  int64_t total = indptr ? indptr[rows] - indptr[0] : static_cast<int64_t>(rows) * (rowLength > 0 ? rowLength : 1);
  int r = 0;
  for (int p = 0; p < parts && r < rows; p++) {
    int64_t target = indptr ? indptr[0] + (total * (p + 1)) / parts : 0;
    int end;
    if (p == parts - 1) {
      end = rows;
    } else if (indptr) {
      // First row whose end passes the target.
      int lo = r + 1, hi = rows;
      while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (indptr[mid] >= target) hi = mid; else lo = mid + 1;
      }
      end = lo;
    } else {
      end = static_cast<int>((static_cast<int64_t>(rows) * (p + 1)) / parts);
      if (end <= r) end = r + 1;
    }
    out.push_back({r, end});
    r = end;
  }
  return out;
}

void addBias(float* y, int batch, int rows, const float* bias) {
  if (!bias) return;
  for (int b = 0; b < batch; b++)
    for (int r = 0; r < rows; r++) y[static_cast<int64_t>(b) * rows + r] += bias[r];
}

}  // namespace sk

namespace {
using namespace sk;

// exchangePaths(a, b): swap two paths in one step (Linux renameat2 with RENAME_EXCHANGE). Returns
// false where the kernel or the file system cannot (then callers fall back to two renames); throws
// with the system's message on any other failure.
Napi::Value ExchangePaths(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string a = info[0].As<Napi::String>().Utf8Value();
  std::string b = info[1].As<Napi::String>().Utf8Value();
#if defined(__linux__) && defined(SYS_renameat2)
  long r = syscall(SYS_renameat2, AT_FDCWD, a.c_str(), AT_FDCWD, b.c_str(), 2 /* RENAME_EXCHANGE */);
  if (r == 0) return Napi::Boolean::New(env, true);
  int e = errno;
  if (e == EINVAL || e == ENOSYS || e == EOPNOTSUPP) return Napi::Boolean::New(env, false);
  Napi::Error error = Napi::Error::New(env, std::string("renameat2: ") + std::strerror(e));
  error.Set("errno", Napi::Number::New(env, e));
  error.ThrowAsJavaScriptException();
  return env.Undefined();
#else
  (void)a;
  (void)b;
  return Napi::Boolean::New(env, false);
#endif
}

Napi::Value SetThreads(const Napi::CallbackInfo& info) {
  int n = info[0].As<Napi::Number>().Int32Value();
  if (n < 1) n = 1;
  std::lock_guard<std::mutex> lock(callMutex);
  if (n != pool->threads()) pool->resize(n);
  setBlasThreads(n);
  return info.Env().Undefined();
}

Napi::Value Features(const Napi::CallbackInfo& info) {
  Napi::Object o = Napi::Object::New(info.Env());
#ifdef SK_X86
  __builtin_cpu_init();
  o.Set("avx2", __builtin_cpu_supports("avx2") != 0);
  o.Set("fma", __builtin_cpu_supports("fma") != 0);
  o.Set("f16c", __builtin_cpu_supports("f16c") != 0);
  o.Set("avx512f", __builtin_cpu_supports("avx512f") != 0);
  o.Set("avx512", cpuHasAvx512());
#else
  o.Set("avx2", false);
  o.Set("fma", false);
  o.Set("f16c", false);
  o.Set("avx512f", false);
  o.Set("avx512", false);
#endif
  o.Set("kernels", kernelsName());
  const char* blas = blasName();
  if (blas == nullptr) o.Set("blas", info.Env().Null());
  else o.Set("blas", blas);
  o.Set("threads", pool->threads());
  return o;
}

// useKernels('avx512' | 'avx2' | 'portable'): the best of these at or below the one asked for that
// the CPU runs (for tests of every path on one machine); returns the one chosen.
Napi::Value UseKernels(const Napi::CallbackInfo& info) {
  std::string which = info[0].As<Napi::String>().Utf8Value();
  std::lock_guard<std::mutex> lock(callMutex);
#ifdef SK_X86
  useAvx512 = which == "avx512" && cpuHasAvx512();
  useAvx2 = (which == "avx512" || which == "avx2") && cpuHasAvx2();
#else
  useAvx512 = false;
  useAvx2 = false;
#endif
  return Napi::String::New(info.Env(), kernelsName());
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  {
    std::lock_guard<std::mutex> lock(callMutex);
    if (!pool) pool = std::make_unique<Pool>(1);
  }
#ifdef SK_X86
  useAvx2 = cpuHasAvx2();
  useAvx512 = cpuHasAvx512();
#endif
  exports.Set("linearDense", Napi::Function::New(env, LinearDense));
  exports.Set("linearCsr", Napi::Function::New(env, LinearCsr));
  exports.Set("linearNm24", Napi::Function::New(env, LinearNm24));
  exports.Set("linearBsr", Napi::Function::New(env, LinearBsr));
  exports.Set("gatherGemv", Napi::Function::New(env, GatherGemv));
  exports.Set("attend", Napi::Function::New(env, sk::Attend));
  exports.Set("exchangePaths", Napi::Function::New(env, ExchangePaths));
  exports.Set("setThreads", Napi::Function::New(env, SetThreads));
  exports.Set("features", Napi::Function::New(env, Features));
  exports.Set("useKernels", Napi::Function::New(env, UseKernels));
  exports.Set("useBlas", Napi::Function::New(env, [](const Napi::CallbackInfo& info) {
    std::lock_guard<std::mutex> lock(callMutex);
    return Napi::Boolean::New(info.Env(), useBlas(info[0].As<Napi::Boolean>().Value()));
  }));
  return exports;
}

}  // namespace

NODE_API_MODULE(sparsekit_kernels, Init)