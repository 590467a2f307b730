// A system BLAS for dense f32 products of wide batches, loaded at run time with dlopen so the addon
// never links against one: OpenBLAS (Debian: libopenblas0) or BLIS (libblis4) where installed,
// else none and the addon's own kernels run. SPARSEKIT_BLAS=0 keeps it unloaded.
#include <cstdlib>
#include <cstring>

#include "common.h"

#ifdef __linux__
#include <dlfcn.h>
#endif

namespace sk {
namespace {

using Sgemm = void (*)(int order, int transA, int transB, int m, int n, int k, float alpha, const float* a, int lda,
                       const float* b, int ldb, float beta, float* c, int ldc);
using SetThreads = void (*)(int threads);

Sgemm sgemm = nullptr;
SetThreads setBlasThreadsFn = nullptr;
const char* loadedName = nullptr;
bool enabled = true;
bool tried = false;

void load() {
  if (tried) return;
  tried = true;
#ifdef __linux__
  const char* env = std::getenv("SPARSEKIT_BLAS");
  if (env != nullptr && std::strcmp(env, "0") == 0) return;
  struct Candidate {
    const char* file;
    const char* name;
    const char* threads;
  };
  const Candidate candidates[] = {
      {"libopenblas.so.0", "openblas", "openblas_set_num_threads"},
      {"libblis.so.4", "blis", "bli_thread_set_num_threads"},
  };
  for (const Candidate& c : candidates) {
    void* handle = dlopen(c.file, RTLD_NOW | RTLD_LOCAL);
    if (handle == nullptr) continue;
    auto f = reinterpret_cast<Sgemm>(dlsym(handle, "cblas_sgemm"));
    if (f == nullptr) {
      dlclose(handle);
      continue;
    }
    sgemm = f;
    setBlasThreadsFn = reinterpret_cast<SetThreads>(dlsym(handle, c.threads));
    loadedName = c.name;
    if (setBlasThreadsFn != nullptr && pool) setBlasThreadsFn(pool->threads());
    return;
  }
#endif
}

}  // namespace

const char* blasName() {
  load();
  return enabled ? loadedName : nullptr;
}

bool useBlas(bool on) {
  load();
  enabled = on;
  return enabled && sgemm != nullptr;
}

void setBlasThreads(int threads) {
  if (setBlasThreadsFn != nullptr) setBlasThreadsFn(threads);
}

bool blasLinear(const float* x, int batch, const float* w, int rows, int cols, float* y) {
  load();
  if (!enabled || sgemm == nullptr) return false;
  // y [batch, rows] = x [batch, cols] W^T, W [rows, cols], row-major (CblasRowMajor 101, NoTrans 111,
  // Trans 112).
  sgemm(101, 111, 112, batch, rows, cols, 1.0f, x, cols, w, cols, 0.0f, y, rows);
  return true;
}

}  // namespace sk
