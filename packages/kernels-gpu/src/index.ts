export {
  type BlockSparseAttentionOptions,
  blockDensity,
  blockSparseAttention,
  blockSparseAttentionReference,
} from './attention.js';
export { createGpuBackend, GpuBackend, type GpuLinearOptions, type GpuMatrix } from './backend.js';
export {
  type AcquiredDevice,
  acquireDevice,
  type DeviceOptions,
  defaultGpu,
  NoGpuAdapterError,
} from './gpu.js';
