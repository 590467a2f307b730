export { BlockMask, type BlockMaskOptions, createBlockMask } from './block-mask.js';
export { type BlockTopK, type BlockTopKOptions, blockTopK } from './block-top-k.js';
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
  estimateVerticalSlash,
  type VerticalSlash,
  type VerticalSlashOptions,
  verticalSlashMask,
} from './vertical-slash.js';
