{
  "targets": [
    {
      "target_name": "sparsekit_kernels",
      "sources": ["native/addon.cc", "native/dense.cc", "native/csr.cc", "native/structured.cc", "native/bsr.cc", "native/gather.cc", "native/attention.cc", "native/blas.cc"],
      "libraries": ["-ldl"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_DISABLE_CPP_EXCEPTIONS", "NAPI_VERSION=8"],
      "cflags_cc": ["-O3", "-std=c++17", "-fno-exceptions"],
      "cflags_cc!": ["-fno-rtti"]
    }
  ]
}
