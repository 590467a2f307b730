export { BlockMask, type BlockMaskOptions, createBlockMask } from './block-mask.js';
export { type BlockTopK, type BlockTopKOptions, blockTopK } from './block-top-k.js';
export { decodeLayerStep, type SyntheticLayer, syntheticLayer } from './decode-speed.js';
export { type KernelMaskOptions, kernelBlockLists, toAttentionMask } from './kernel-mask.js';
export {
  andMasks,
  type BlockKind,
  causal,
  documents,
  type MaskMod,
  orMasks,
  sinks,
  slidingWindow,
} from './mask-mods.js';
export {
  ATTENTION_PATTERNS,
  makePattern,
  PATTERN_NAMES,
  type PatternEntry,
  type PatternOptions,
} from './pattern-table.js';
export {
  type BigBirdMask,
  type BigBirdOptions,
  bigBird,
  type LongformerOptions,
  longformer,
} from './patterns.js';
export {
  type DoubleSparsityOptions,
  DoubleSparsityPolicy,
  doubleSparsity,
  LABEL_SOURCES,
  type LabelChannels,
  type LabelSource,
  pseudoQuantize,
} from './policies/double-sparsity.js';
export {
  type ChannelImportance,
  calibrateDoubleSparsity,
  channelFileContents,
  channelFileKey,
  labelChannels,
  parseChannelFile,
  type QkHookableLM,
} from './policies/double-sparsity-calibrate.js';
export { type H2oOptions, H2oPolicy, h2o } from './policies/h2o.js';
export { attentionRecall } from './policies/probabilities.js';
export {
  pageScores,
  type QuestOptions,
  QuestPolicy,
  quest,
  questPageCount,
  questPageMetadata,
  questPageScores,
  questQueryVector,
} from './policies/quest.js';
export { pool1d, type SnapKvOptions, SnapKvPolicy, type SnapKvPooling, snapKv } from './policies/snap-kv.js';
export { type StreamingLlmOptions, StreamingLlmPolicy, streamingLlm } from './policies/streaming-llm.js';
export {
  KV_POLICIES,
  POLICY_NAMES,
  type PolicyEntry,
  type PolicySettings,
  policyEntry,
} from './policy-table.js';
export {
  decodeStepwise,
  policyPerplexity,
  poolSelectionStats,
  recordSelections,
  type SelectionStats,
  type StepwiseOptions,
} from './quality.js';
export {
  estimateVerticalSlash,
  type VerticalSlash,
  type VerticalSlashOptions,
  verticalSlashMask,
} from './vertical-slash.js';
