import type { Linear } from './linear.js';
import type { MlpParams } from './mlp.js';

export interface NormParams {
  weight: Float32Array;
  bias?: Float32Array;
}

/**
 * One decoder block. Names follow Llama: q/k/v/o_proj, and in the MLP slot gate/up/down_proj
 * (GPT-2's c_fc is `up`) or, for a mixture of experts, the router gate and each expert's layers.
 */
export interface BlockParams {
  /** Before attention (pre-norm) or after the attention residual (post-norm). */
  attentionNorm: NormParams;
  q: Linear;
  k: Linear;
  v: Linear;
  o: Linear;
  mlpNorm: NormParams;
  mlp: MlpParams;
  /**
   * SliceGPT's residual shortcuts, as layers x -> x Q (weight Q^T): the stream entering the block
   * re-expressed in the basis after attention, and that one in the basis after the MLP. Absent: identity.
   */
  attentionShortcut?: Linear;
  mlpShortcut?: Linear;
}

export interface ModelParams {
  /** [vocab, wordEmbedDim] */
  embedTokens: Float32Array;
  /** Learned positions [maxPositions + positionOffset, hidden]. */
  embedPositions?: Float32Array;
  projectIn?: Linear;
  projectOut?: Linear;
  blocks: BlockParams[];
  finalNorm?: NormParams;
  /** [vocab, wordEmbedDim]; for tied embeddings a dense view of embedTokens. */
  lmHead: Linear;
}
