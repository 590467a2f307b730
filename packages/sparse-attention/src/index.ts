export { BlockMask, type BlockMaskOptions, createBlockMask } from './block-mask.js';
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
