// @sparsekit/kernels-native: the backend contract on native CPU kernels (a Node-API addon), optional:
// where it cannot load, Sparsekit's wasm backend runs.

export {
  type NativeKernels,
  NativeUnavailableError,
  nativeAvailability,
  nativeKernels,
  pathExchange,
} from './load.js';
export { createNativeBackend, NativeBackend, type NativeBackendOptions } from './native-backend.js';
