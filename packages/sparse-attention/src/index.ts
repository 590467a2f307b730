export { BlockMask, type BlockMaskOptions, createBlockMask } from './block-mask.js';
export { type BlockTopK, type BlockTopKOptions, blockTopK } from './block-top-k.js';
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
