export {
  attention,
  attentionWeights,
  keySegments,
  PRODUCT_MIN_SEQ,
  resolveAttention,
  weightedValues,
} from './backend/attention.js';
export {
  type AnyBackend,
  type AsyncBackend,
  type AttentionArgs,
  type AttentionMask,
  BACKEND_OPS,
  type Backend,
  type BackendOp,
  type GatherGemvArgs,
  type LinearOptions,
  type MatmulOptions,
  type SddmmOptions,
} from './backend/contract.js';
export {
  cachedGatherGemv,
  checkGatherGemv,
  checkLinearArgs,
  checkRows,
  gatherGemvColumns,
  keepRows,
  matmulOnLinear,
  matmulWeight,
  spmmInput,
  spmmOnLinear,
  spmmOutput,
  transposedColumns,
} from './backend/products.js';
export { createReferenceBackend, referenceBackend } from './backend/reference-backend.js';
export { unsupported } from './backend/unsupported.js';
export {
  convert,
  denseFromTensor,
  type FormatOptions,
  fromCsr,
  fromDense,
  toCsr,
  toDenseArray,
  transpose,
  withDType,
} from './convert.js';
export { type EntryCallback, forEachNonzero } from './entries.js';
export { type BitmaskFields, bitmask, bitmaskRowBytes } from './formats/bitmask.js';
export { type BsrFields, bsr } from './formats/bsr.js';
export { type CooFields, coo, cooFromTriplets } from './formats/coo.js';
export { type CscFields, csc } from './formats/csc.js';
export { CsrBuilder, type CsrFields, csr } from './formats/csr.js';
export { type DenseFields, dense, type SelectOptions, zerosDense } from './formats/dense.js';
export { type NmFields, nm, nmIndexBits, nmIndexBytes, readNmPosition } from './formats/nm.js';
export { decodeSparseSafetensors, encodeSparseSafetensors, type SparseFileContents } from './io/codec.js';
export { FORMATS_METADATA_KEY, type StoredFormat, storagePrefix } from './io/tensors.js';
export { linear, nmLinear, sddmm, spmm, spmv } from './kernels/reference.js';
export { HessianAccumulator, InputNormAccumulator } from './math/calibration.js';
export {
  cholesky,
  choleskyInverse,
  gram,
  inverseUpperFactor,
  lowerTriangularInverse,
  NotPositiveDefiniteError,
  symmetricEigen,
  upperCholesky,
} from './math/linalg.js';
export { highestIndices, kthSmallest, lowestIndices, markLowest } from './math/selection.js';
export { measuredSparsity } from './math/sparsity.js';
export type { HasPackableLayers, PackableLinear } from './packable.js';
export { blockNnz, byteSize, equals, histogram, nnz, rowNnz, sparsity, storedCount } from './stats.js';
export {
  type BitmaskMatrix,
  type BsrMatrix,
  type CooMatrix,
  type CscMatrix,
  type CsrMatrix,
  type DenseMatrix,
  FORMAT_NAMES,
  type FormatName,
  type Indices,
  type MatrixOf,
  type NmMatrix,
  type SparseMatrix,
  type ValueDType,
  type Values,
} from './types.js';
export { validate } from './validate.js';
export { encodeValues, type IndexType, valuesF32 } from './values.js';
export {
  createWasmBackend,
  WasmBackend,
  type WasmBackendOptions,
} from './wasm/backend.js';
export type { PreparedGather } from './wasm/gather.js';
export type { PreparedMatrix } from './wasm/prepare.js';
