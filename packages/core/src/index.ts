export {
  ActivationStore,
  ActivationStoreFullError,
  type ActivationStoreOptions,
  type ShardSink,
} from './activation-store.js';
export {
  allocate,
  bytesPerElement,
  DTYPES,
  type DType,
  dtypeOfStorage,
  isDType,
  isFloatDType,
  type Storage,
  type StorageTypes,
  storageView,
} from './dtype.js';
export {
  type ErrorCode,
  InvalidArgumentError,
  InvalidFormatError,
  IOError,
  NonFiniteError,
  SafetensorsError,
  ShapeMismatchError,
  SparsekitError,
  type SparsekitErrorOptions,
  UnsupportedDTypeError,
  UnsupportedOpError,
} from './errors.js';
export {
  bf16ArrayToF32,
  bf16BitsToF32,
  f16ArrayToF32,
  f16BitsToF32,
  f16Table32,
  f32ArrayToBf16,
  f32ArrayToF16,
  f32ToBf16Bits,
  f32ToF16Bits,
} from './half.js';
export {
  calibrationHooks,
  HOOK_SITES,
  type Hook,
  type HookableLM,
  type HookContext,
  type HookHandle,
  type HookOptions,
  type HookSite,
  Hooks,
  runHooks,
  runWithHooks,
} from './hooks.js';
export { hasLoneSurrogate, type StrictJsonOptions, strictJsonIssue } from './json-strict.js';
export {
  encodeOnnxModel,
  type OnnxAttribute,
  type OnnxElementType,
  type OnnxGraph,
  type OnnxInitializer,
  type OnnxNode,
  type OnnxValueInfo,
} from './onnx.js';
export {
  type ProgressCallback,
  type ProgressEvent,
  type ProgressOptions,
  reportProgress,
} from './progress.js';
export { Rng } from './rng.js';
export {
  decodeSafetensors,
  decodeSafetensorsHeader,
  encodeSafetensors,
  type SafetensorsContents,
  tensorFromBytes,
} from './safetensors/codec.js';
export {
  MAX_HEADER_SIZE,
  parseHeader,
  parseHeaderLength,
  type SafetensorsHeader,
  safetensorsDType,
  type TensorEntry,
} from './safetensors/header.js';
export { planLayout, type SafetensorsLayout, type TensorMap } from './safetensors/layout.js';
export { assertShape, resolveShape, type Shape, shapeSize, shapesEqual, stridesOf } from './shape.js';
export type {
  BlockwiseLM,
  Calibratable,
  CalibrationHook,
  CausalLM,
  DecodeOptions,
  DecodingLM,
  ExpertPrunableLM,
  HasLinearLayers,
  HasModules,
  KvLane,
  KvPolicy,
  KvQuery,
  LinearLayer,
  ModuleEntry,
  ModuleKind,
  NarrowableLM,
  RebuildRouter,
  RollbackCache,
  Router,
  RouterInput,
  Routing,
  RunOptions,
  SliceableLM,
  StreamPoint,
  Tokenizer,
} from './spec.js';
export { MAX_CALIBRATION_SAMPLES } from './spec.js';
export { Tensor } from './tensor.js';
export { type LoadedTfjs, loadTfjs, type MatMulOps, matMulOps, type TfjsBackendName } from './tfjs.js';
export { registerWasmGradientKernels } from './tfjs-wasm-kernels.js';
export { transposeValues } from './transpose.js';
export { assertFinite } from './validate.js';
