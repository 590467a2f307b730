// Llama-shaped models with seeded random weights, for speed figures only: linear weights N(0, 0.02)
// (Hugging Face's Llama init), norms ones, embeddings and LM head untied. Nothing such a model
// computes means anything; only its shapes and the time its kernels take do.
import { InvalidArgumentError, Rng, Tensor } from '@sparsekit/core';
import type { AnyBackend } from '@sparsekit/sparse-formats';
import { configFromHf, validateConfig } from './config.js';
import { paramsFromHf } from './hf/names.js';
import { TransformerLM } from './runtime/model.js';
import { backendRef } from './runtime/steps.js';

export interface RandomLlamaShape {
  hidden: number;
  intermediate: number;
  heads: number;
  kvHeads: number;
  layers: number;
  vocab: number;
  maxPositions: number;
}

/** The shape's Hugging Face config.json and its tensors under Hugging Face names. */
export function randomLlamaTensors(
  shape: RandomLlamaShape,
  seed = 0,
): { hfConfig: Record<string, unknown>; tensors: Record<string, Tensor<'f32'>> } {
  const { hidden: h, intermediate: inter, heads, kvHeads, layers, vocab } = shape;
  for (const name of [
    'hidden',
    'intermediate',
    'heads',
    'kvHeads',
    'layers',
    'vocab',
    'maxPositions',
  ] as const) {
    const v = shape[name];
    if (!(Number.isInteger(v) && v >= 1))
      throw new InvalidArgumentError(`shape.${name}`, v, 'must be a positive integer');
  }
  if (h % heads !== 0 || heads % kvHeads !== 0)
    throw new InvalidArgumentError(
      'shape',
      `${h}/${heads}/${kvHeads}`,
      'needs heads to divide hidden and kvHeads heads',
    );
  const headDim = h / heads;
  const rng = new Rng(seed);
  const normal = (rows: number, cols: number) =>
    new Tensor('f32', [rows, cols], rng.normalArray(rows * cols, 0, 0.02));
  const ones = () => new Tensor('f32', [h], new Float32Array(h).fill(1));
  const tensors: Record<string, Tensor<'f32'>> = { 'model.embed_tokens.weight': normal(vocab, h) };
  for (let l = 0; l < layers; l++) {
    const p = `model.layers.${l}`;
    tensors[`${p}.input_layernorm.weight`] = ones();
    tensors[`${p}.self_attn.q_proj.weight`] = normal(h, h);
    tensors[`${p}.self_attn.k_proj.weight`] = normal(kvHeads * headDim, h);
    tensors[`${p}.self_attn.v_proj.weight`] = normal(kvHeads * headDim, h);
    tensors[`${p}.self_attn.o_proj.weight`] = normal(h, h);
    tensors[`${p}.post_attention_layernorm.weight`] = ones();
    tensors[`${p}.mlp.gate_proj.weight`] = normal(inter, h);
    tensors[`${p}.mlp.up_proj.weight`] = normal(inter, h);
    tensors[`${p}.mlp.down_proj.weight`] = normal(h, inter);
  }
  tensors['model.norm.weight'] = ones();
  tensors['lm_head.weight'] = normal(vocab, h);
  const hfConfig = {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    vocab_size: vocab,
    hidden_size: h,
    intermediate_size: inter,
    num_hidden_layers: layers,
    num_attention_heads: heads,
    num_key_value_heads: kvHeads,
    head_dim: headDim,
    max_position_embeddings: shape.maxPositions,
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    hidden_act: 'silu',
    tie_word_embeddings: false,
    attention_bias: false,
    mlp_bias: false,
    torch_dtype: 'float32',
  };
  return { hfConfig, tensors };
}

/** The shape's model in memory, on `backend` (default: the reference kernels). */
export function randomLlama(shape: RandomLlamaShape, seed = 0, backend?: AnyBackend): TransformerLM {
  const { hfConfig, tensors } = randomLlamaTensors(shape, seed);
  const config = validateConfig(configFromHf(hfConfig));
  const source = {
    where: 'random weights',
    names: () => Object.keys(tensors),
    get: (name: string) => tensors[name],
  };
  const backends = backendRef(backend);
  return new TransformerLM(config, paramsFromHf(config, source, backends), backends);
}
