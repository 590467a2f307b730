// @sparsekit/kernels-native: the backend contract on native CPU kernels (a Node-API addon), optional:
// where it cannot load, Sparsekit's wasm backend runs.

export {
  CPU_BACKENDS,
  type CpuBackend,
  type CpuBackendChoice,
  type CpuBackendOptions,
  type CpuBackendRequest,
  createCpuBackend,
} from './cpu-backend.js';
export {
  type NativeKernelSet,
  type NativeKernels,
  NativeUnavailableError,
  nativeAvailability,
  nativeKernels,
  pathExchange,
} from './load.js';
export { createNativeBackend, NativeBackend, type NativeBackendOptions } from './native-backend.js';
