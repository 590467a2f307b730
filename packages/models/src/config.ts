import { InvalidArgumentError } from '@sparsekit/core';
import { UnsupportedModelError } from './errors.js';
import { type RopeScaling, ropeFromHf, ropeToHf } from './rope.js';

export type ModelFamily = 'gpt2' | 'opt' | 'llama';
export type Activation = 'gelu_new' | 'gelu' | 'relu' | 'silu';

/** Everything the runtime needs to know about an architecture, whatever checkpoint it came from. */
export interface ModelConfig {
  family: ModelFamily;
  vocabSize: number;
  hiddenSize: number;
  numLayers: number;
  numHeads: number;
  /** Key/value heads (grouped-query attention when fewer than numHeads). */
  numKvHeads: number;
  headDim: number;
  intermediateSize: number;
  maxPositions: number;
  norm: 'layernorm' | 'rmsnorm';
  normEps: number;
  /** Norm before attention and MLP (GPT-2, Llama, most OPT) or after the residual add (OPT-350m). */
  preNorm: boolean;
  positions: 'learned' | 'rotary';
  /** Learned positions: index of position 0 in the table (OPT: 2). */
  positionOffset: number;
  ropeTheta: number;
  /** Rescaled rotary frequencies (linear, llama3); absent: the default rope. */
  ropeScaling?: RopeScaling;
  /** Each token reads only the last `slidingWindow` positions (Mistral, Mixtral). */
  slidingWindow?: number;
  /** GPT-2: scores are not scaled by 1/sqrt(headDim) (`scale_attn_weights: false`). */
  unscaledAttention?: boolean;
  /** GPT-2: scores of layer i are divided by i + 1 (`scale_attn_by_inverse_layer_idx`). */
  scaleByInverseLayer?: boolean;
  /** OPT: LayerNorms without weight and bias (`layer_norm_elementwise_affine: false`). */
  normsWithoutAffine?: boolean;
  /** OPT: no final LayerNorm (`_remove_final_layer_norm`, or post-norm blocks). */
  noFinalNorm?: boolean;
  activation: Activation;
  /** SwiGLU-style gate (Llama) or a plain two-layer MLP. */
  gatedMlp: boolean;
  attentionBias: boolean;
  mlpBias: boolean;
  tieEmbeddings: boolean;
  /** OPT: embeddings of this width, projected in and out of the hidden size. */
  wordEmbedDim: number;
  bosTokenId?: number;
  eosTokenId?: number;
  /**
   * Set once norms are folded (weightless RMSNorms, see `TransformerLM.foldNorms`): the width RMSNorm
   * divides by, the original hidden size, also after the stream is sliced to `hiddenSize` (SliceGPT).
   */
  normWidth?: number;
  /** Width of the stream after the last block when it differs from `hiddenSize` (SliceGPT, head not sliced). */
  outputWidth?: number;
  /**
   * A mixture-of-experts MLP in every block (Mixtral: `num_local_experts` gated experts of
   * `intermediateSize` channels, `num_experts_per_tok` chosen per token).
   */
  moe?: { numExperts: number; expertsPerToken: number };
}

type Json = Record<string, unknown>;

function num(json: Json, key: string, fallback?: number): number {
  const v = json[key] ?? fallback;
  if (typeof v !== 'number' || !Number.isFinite(v)) {
    throw new InvalidArgumentError(`config.json "${key}"`, v, 'must be a number');
  }
  return v;
}

function optionalId(json: Json, key: string): number | undefined {
  const v = json[key];
  return typeof v === 'number' ? v : undefined;
}

function activation(name: unknown): Activation {
  if (name === 'gelu_new' || name === 'gelu_pytorch_tanh') return 'gelu_new';
  if (name === 'gelu' || name === 'relu' || name === 'silu') return name;
  if (name === 'swish') return 'silu';
  throw new UnsupportedModelError('activation', String(name));
}

/** The runtime config of a Hugging Face config.json (model types gpt2, opt, llama). */
export function configFromHf(json: Json): ModelConfig {
  const type = json.model_type;
  const ids = { bosTokenId: optionalId(json, 'bos_token_id'), eosTokenId: optionalId(json, 'eos_token_id') };
  const clean = <T extends object>(c: T) =>
    Object.fromEntries(Object.entries(c).filter(([, v]) => v !== undefined)) as T;
  if (type === 'gpt2') {
    const hidden = num(json, 'n_embd');
    const heads = num(json, 'n_head');
    const inner = json.n_inner;
    if (json.add_cross_attention === true)
      throw new UnsupportedModelError(
        'add_cross_attention',
        'GPT-2 with cross-attention (an encoder-decoder) is not a causal LM',
      );
    return clean({
      family: 'gpt2',
      vocabSize: num(json, 'vocab_size'),
      hiddenSize: hidden,
      numLayers: num(json, 'n_layer'),
      numHeads: heads,
      numKvHeads: heads,
      headDim: hidden / heads,
      intermediateSize: typeof inner === 'number' ? inner : 4 * hidden,
      maxPositions: num(json, 'n_positions'),
      norm: 'layernorm',
      normEps: num(json, 'layer_norm_epsilon', 1e-5),
      preNorm: true,
      positions: 'learned',
      positionOffset: 0,
      ropeTheta: 0,
      activation: activation(json.activation_function ?? 'gelu_new'),
      gatedMlp: false,
      attentionBias: true,
      mlpBias: true,
      tieEmbeddings: json.tie_word_embeddings !== false,
      wordEmbedDim: hidden,
      ...(json.scale_attn_weights === false ? { unscaledAttention: true } : {}),
      ...(json.scale_attn_by_inverse_layer_idx === true ? { scaleByInverseLayer: true } : {}),
      ...ids,
    });
  }
  if (type === 'opt') {
    const hidden = num(json, 'hidden_size');
    const heads = num(json, 'num_attention_heads');
    const bias = json.enable_bias !== false;
    return clean({
      family: 'opt',
      vocabSize: num(json, 'vocab_size'),
      hiddenSize: hidden,
      numLayers: num(json, 'num_hidden_layers'),
      numHeads: heads,
      numKvHeads: heads,
      headDim: hidden / heads,
      intermediateSize: num(json, 'ffn_dim'),
      maxPositions: num(json, 'max_position_embeddings'),
      norm: 'layernorm',
      normEps: 1e-5,
      preNorm: json.do_layer_norm_before !== false,
      positions: 'learned',
      positionOffset: 2,
      ropeTheta: 0,
      activation: activation(json.activation_function ?? 'relu'),
      gatedMlp: false,
      attentionBias: bias,
      mlpBias: bias,
      tieEmbeddings: json.tie_word_embeddings !== false,
      wordEmbedDim: num(json, 'word_embed_proj_dim', hidden),
      ...(json.layer_norm_elementwise_affine === false ? { normsWithoutAffine: true } : {}),
      ...(json._remove_final_layer_norm === true || json.do_layer_norm_before === false
        ? { noFinalNorm: true }
        : {}),
      ...ids,
    });
  }
  if (type === 'llama' || type === 'mixtral' || type === 'mistral') {
    const hidden = num(json, 'hidden_size');
    const heads = num(json, 'num_attention_heads');
    const rope = ropeFromHf(json);
    const window = json.sliding_window;
    if (
      window !== undefined &&
      window !== null &&
      !(typeof window === 'number' && Number.isInteger(window) && window > 0)
    )
      throw new InvalidArgumentError(
        'config.json "sliding_window"',
        window,
        'must be a positive integer or null',
      );
    return clean({
      family: 'llama',
      vocabSize: num(json, 'vocab_size'),
      hiddenSize: hidden,
      numLayers: num(json, 'num_hidden_layers'),
      numHeads: heads,
      numKvHeads: num(json, 'num_key_value_heads', heads),
      headDim: num(json, 'head_dim', hidden / heads),
      intermediateSize: num(json, 'intermediate_size'),
      maxPositions: num(json, 'max_position_embeddings'),
      norm: 'rmsnorm',
      normEps: num(json, 'rms_norm_eps', 1e-6),
      preNorm: true,
      positions: 'rotary',
      positionOffset: 0,
      ropeTheta: rope.theta,
      ...(rope.scaling === undefined ? {} : { ropeScaling: rope.scaling }),
      ...(typeof window === 'number' && type !== 'llama' ? { slidingWindow: window } : {}),
      activation: activation(json.hidden_act ?? 'silu'),
      gatedMlp: true,
      attentionBias: json.attention_bias === true,
      mlpBias: json.mlp_bias === true,
      tieEmbeddings: json.tie_word_embeddings === true,
      wordEmbedDim: hidden,
      ...(json.rms_norm_width === undefined ? {} : { normWidth: num(json, 'rms_norm_width') }),
      ...(json.output_hidden_size === undefined ? {} : { outputWidth: num(json, 'output_hidden_size') }),
      ...(type === 'mixtral'
        ? {
            moe: {
              numExperts: num(json, 'num_local_experts', 8),
              expertsPerToken: num(json, 'num_experts_per_tok', 2),
            },
          }
        : {}),
      ...ids,
    });
  }
  throw new UnsupportedModelError(
    'model_type',
    `${String(type)}; supported: gpt2, opt, llama, mistral, mixtral`,
  );
}

/** Check the numbers of a config (whatever its source) hang together. */
export function validateConfig(c: ModelConfig): ModelConfig {
  const positive = [
    'vocabSize',
    'hiddenSize',
    'numLayers',
    'numHeads',
    'numKvHeads',
    'headDim',
    'intermediateSize',
    'maxPositions',
  ] as const;
  for (const key of positive) {
    if (!Number.isInteger(c[key]) || c[key] < 1)
      throw new InvalidArgumentError(`config ${key}`, c[key], 'must be a positive integer');
  }
  if (c.maxPositions < 2)
    throw new InvalidArgumentError(
      'config maxPositions',
      c.maxPositions,
      'must be at least 2 (a causal LM needs one token to predict the next)',
    );
  if (c.numHeads % c.numKvHeads !== 0) {
    throw new InvalidArgumentError('config numKvHeads', c.numKvHeads, `must divide numHeads (${c.numHeads})`);
  }
  for (const key of ['bosTokenId', 'eosTokenId'] as const) {
    const id = c[key];
    if (id !== undefined && !(Number.isInteger(id) && id >= 0 && id < c.vocabSize))
      throw new InvalidArgumentError(`config ${key}`, id, `must be a token id in [0, ${c.vocabSize})`);
  }
  if (c.moe !== undefined) {
    const { numExperts: e, expertsPerToken: k } = c.moe;
    if (!Number.isInteger(e) || e < 1)
      throw new InvalidArgumentError('config numExperts', e, 'must be a positive integer');
    if (!Number.isInteger(k) || k < 1 || k > e)
      throw new InvalidArgumentError(
        'config expertsPerToken',
        k,
        `must be in [1, ${e}] (the number of experts)`,
      );
  }
  if (c.positions === 'rotary' && c.headDim % 2 !== 0) {
    throw new InvalidArgumentError('config headDim', c.headDim, 'must be even for rotary positions');
  }
  return c;
}

/** A Hugging Face config.json for a runtime config (what `saveModel` writes). */
export function configToHf(c: ModelConfig): Record<string, unknown> {
  const ids = {
    ...(c.bosTokenId === undefined ? {} : { bos_token_id: c.bosTokenId }),
    ...(c.eosTokenId === undefined ? {} : { eos_token_id: c.eosTokenId }),
  };
  if (c.family !== 'llama' && c.numHeads * c.headDim !== c.hiddenSize) {
    // GPT-2 and OPT configs derive the head width from hidden_size / heads: no place for fewer heads.
    throw new UnsupportedModelError(
      `${c.family} with ${c.numHeads} heads of ${c.headDim} on a ${c.hiddenSize}-wide stream`,
      'its config.json cannot describe removed heads; only Llama configs (head_dim) can be saved so',
    );
  }
  if (c.family === 'gpt2') {
    return {
      architectures: ['GPT2LMHeadModel'],
      model_type: 'gpt2',
      vocab_size: c.vocabSize,
      n_positions: c.maxPositions,
      n_embd: c.hiddenSize,
      n_layer: c.numLayers,
      n_head: c.numHeads,
      n_inner: c.intermediateSize,
      activation_function: c.activation,
      layer_norm_epsilon: c.normEps,
      ...(c.unscaledAttention === true ? { scale_attn_weights: false } : {}),
      ...(c.scaleByInverseLayer === true ? { scale_attn_by_inverse_layer_idx: true } : {}),
      tie_word_embeddings: c.tieEmbeddings,
      torch_dtype: 'float32',
      ...ids,
    };
  }
  if (c.family === 'opt') {
    return {
      architectures: ['OPTForCausalLM'],
      model_type: 'opt',
      vocab_size: c.vocabSize,
      hidden_size: c.hiddenSize,
      num_hidden_layers: c.numLayers,
      num_attention_heads: c.numHeads,
      ffn_dim: c.intermediateSize,
      max_position_embeddings: c.maxPositions,
      word_embed_proj_dim: c.wordEmbedDim,
      do_layer_norm_before: c.preNorm,
      ...(c.normsWithoutAffine === true ? { layer_norm_elementwise_affine: false } : {}),
      ...(c.noFinalNorm === true && c.preNorm ? { _remove_final_layer_norm: true } : {}),
      activation_function: c.activation,
      enable_bias: c.attentionBias,
      tie_word_embeddings: c.tieEmbeddings,
      torch_dtype: 'float32',
      ...ids,
    };
  }
  const moe =
    c.moe === undefined
      ? {}
      : { num_local_experts: c.moe.numExperts, num_experts_per_tok: c.moe.expertsPerToken };
  const type = c.moe !== undefined ? 'mixtral' : c.slidingWindow !== undefined ? 'mistral' : 'llama';
  return {
    architectures: [
      { llama: 'LlamaForCausalLM', mistral: 'MistralForCausalLM', mixtral: 'MixtralForCausalLM' }[type],
    ],
    model_type: type,
    ...moe,
    ...(c.slidingWindow === undefined ? {} : { sliding_window: c.slidingWindow }),
    vocab_size: c.vocabSize,
    hidden_size: c.hiddenSize,
    intermediate_size: c.intermediateSize,
    num_hidden_layers: c.numLayers,
    num_attention_heads: c.numHeads,
    num_key_value_heads: c.numKvHeads,
    head_dim: c.headDim,
    max_position_embeddings: c.maxPositions,
    rms_norm_eps: c.normEps,
    ...ropeToHf(c.ropeTheta, c.ropeScaling),
    hidden_act: c.activation,
    tie_word_embeddings: c.tieEmbeddings,
    attention_bias: c.attentionBias,
    mlp_bias: c.mlpBias,
    ...(c.normWidth === undefined ? {} : { rms_norm_width: c.normWidth }),
    ...(c.outputWidth === undefined ? {} : { output_hidden_size: c.outputWidth }),
    torch_dtype: 'float32',
    ...ids,
  };
}
