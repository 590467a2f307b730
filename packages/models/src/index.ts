export {
  type Activation,
  configFromHf,
  configToHf,
  type ModelConfig,
  type ModelFamily,
  validateConfig,
} from './config.js';
export { MissingTensorError, TokenizerTimeoutError, UnsupportedModelError } from './errors.js';
export { hfLinearName, paramsFromHf, paramsToHf, type StoredLinear, type TensorSource } from './hf/names.js';
export {
  createOnnxDecoder,
  llamaDecodeOnnx,
  type OnnxDecodeGraph,
  type OnnxDecoder,
  type OnnxRuntimeLike,
  type OnnxSessionLike,
  onnxGenerationSpeed,
} from './onnx-llama.js';
export { type RandomLlamaShape, randomLlama, randomLlamaTensors } from './random-llama.js';
export { backtrackingIssue } from './regex-backtracking.js';
export {
  type GenerateOptions,
  type Generation,
  generate,
  generateAsync,
  type SamplingOptions,
  sampleToken,
} from './runtime/generate.js';
export { KvCache } from './runtime/kv-cache.js';
export { denseMatrix, Linear } from './runtime/linear.js';
export { type ForwardOptions, TransformerLM } from './runtime/model.js';
export { type SplitOptions, splitGatedMlp } from './runtime/moe-split.js';
export type { BlockParams, ModelParams, NormParams } from './runtime/params.js';
export { generationSpeed, type Speed, type SpeedOptions } from './runtime/speed.js';
export { type BackendRef, backendRef, type SparseDecode, type Step, type Steps } from './runtime/steps.js';
export { defaultEncodeTimeLimitMs, HfTokenizer, type HfTokenizerOptions } from './tokenizer.js';
export { checkTokenizerJson, MAX_TOKENIZER_ENTRIES } from './tokenizer-json.js';
