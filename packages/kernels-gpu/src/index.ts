export {
  type BlockSparseAttentionOptions,
  blockDensity,
  blockSparseAttention,
  blockSparseAttentionReference,
  timeBlockSparseAttention,
} from './attention.js';
export { createGpuBackend, GpuBackend, type GpuLinearOptions, type GpuMatrix } from './backend.js';
export { type DenseBaseline, tfjsNodeGpuBaseline } from './baseline.js';
export { type GpuColumns, type GpuGatherGemvArgs, gatherSplits } from './gather-gemv.js';
export {
  type AcquiredDevice,
  acquireDevice,
  type DeviceOptions,
  defaultGpu,
  NoGpuAdapterError,
} from './gpu.js';
export { createGpuJsBackend, GpuJsBackend, type GpuJsOptions, GpuJsUnavailableError } from './gpujs.js';
