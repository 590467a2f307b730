// Hugging Face tensor names <-> the runtime's parameters, for gpt2, opt, llama and mixtral checkpoints.
// GPT-2's Conv1D weights are stored [in, out] and its c_attn holds q, k and v side by side; they are
// transposed and split on load and joined back on save.
import { ShapeMismatchError, type Tensor, transposeValues } from '@sparsekit/core';
import type { SparseMatrix } from '@sparsekit/sparse-formats';
import type { ModelConfig } from '../config.js';
import { MissingTensorError, UnsupportedModelError } from '../errors.js';
import { denseMatrix, Linear } from '../runtime/linear.js';
import { type MlpParams, mlpGroups, TopKRouter } from '../runtime/mlp.js';
import { moduleTree } from '../runtime/modules.js';
import type { BlockParams, ModelParams, NormParams } from '../runtime/params.js';
import type { BackendRef } from '../runtime/steps.js';

/** Read access to a checkpoint's tensors, converted to f32. */
export interface TensorSource {
  names(): readonly string[];
  get(name: string): Tensor<'f32'> | undefined;
  /** Where the tensors come from, for error messages. */
  readonly where: string;
}

class Reader {
  constructor(
    private readonly source: TensorSource,
    private readonly prefixes: readonly string[],
  ) {}

  /** A tensor under the first prefix that has it; checks its shape. */
  get(name: string, shape: readonly number[], optional = false): Float32Array | undefined {
    for (const prefix of this.prefixes) {
      const t = this.source.get(prefix + name);
      if (t === undefined) continue;
      if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
        throw new ShapeMismatchError(shape, t.shape, prefix + name);
      }
      return t.data;
    }
    if (optional) return undefined;
    throw new MissingTensorError(this.prefixes[0] + name, this.source.where);
  }

  need(name: string, shape: readonly number[]): Float32Array {
    return this.get(name, shape)!;
  }
}

/** A linear layer stored under its runtime name (packed files), overriding the Hugging Face tensors. */
export interface StoredLinear {
  weight: SparseMatrix;
  bias?: Float32Array;
}

/**
 * Build the runtime's parameters from a checkpoint's tensors. Layers in `stored` (by runtime name,
 * e.g. 'layers.0.mlp.up_proj') are taken from there instead, in whatever format they hold.
 */
export function paramsFromHf(
  config: ModelConfig,
  source: TensorSource,
  kernel: BackendRef,
  stored: ReadonlyMap<string, StoredLinear> = new Map(),
): ModelParams {
  const c = config;
  const H = c.hiddenSize;
  const I = c.intermediateSize;
  const qOut = c.numHeads * c.headDim;
  const kvOut = c.numKvHeads * c.headDim;
  const lazy = (
    name: string,
    rows: number,
    cols: number,
    w: () => Float32Array,
    bias?: () => Float32Array | undefined,
  ) => {
    const s = stored.get(name);
    if (s !== undefined) {
      if (s.weight.rows !== rows || s.weight.cols !== cols)
        throw new ShapeMismatchError([rows, cols], [s.weight.rows, s.weight.cols], name);
      return new Linear(name, s.weight, s.bias, kernel);
    }
    return new Linear(name, denseMatrix(w(), rows, cols), bias?.(), kernel);
  };
  const linear = (name: string, w: Float32Array, rows: number, cols: number, bias?: Float32Array) =>
    new Linear(name, denseMatrix(w, rows, cols), bias, kernel);
  const blocks: BlockParams[] = [];
  if (c.family === 'gpt2') {
    const r = new Reader(source, ['transformer.', '']);
    for (let i = 0; i < c.numLayers; i++) {
      const p = `h.${i}.`;
      const n = `layers.${i}.`;
      let qkvCache: Float32Array | undefined;
      const qkv = () => {
        qkvCache ??= transposeValues(r.need(`${p}attn.c_attn.weight`, [H, 3 * H]), H, 3 * H);
        return qkvCache;
      };
      const qkvBias = () => r.need(`${p}attn.c_attn.bias`, [3 * H]);
      const part = (k: number) => () => qkv().slice(k * H * H, (k + 1) * H * H);
      const biasPart = (k: number) => () => qkvBias().slice(k * H, (k + 1) * H);
      const conv = (name: string, rows: number, cols: number) => () =>
        transposeValues(r.need(`${p}${name}.weight`, [cols, rows]), cols, rows);
      const convBias = (name: string, rows: number) => () => r.need(`${p}${name}.bias`, [rows]);
      blocks.push({
        attentionNorm: { weight: r.need(`${p}ln_1.weight`, [H]), bias: r.need(`${p}ln_1.bias`, [H]) },
        q: lazy(`${n}self_attn.q_proj`, H, H, part(0), biasPart(0)),
        k: lazy(`${n}self_attn.k_proj`, H, H, part(1), biasPart(1)),
        v: lazy(`${n}self_attn.v_proj`, H, H, part(2), biasPart(2)),
        o: lazy(`${n}self_attn.o_proj`, H, H, conv('attn.c_proj', H, H), convBias('attn.c_proj', H)),
        mlpNorm: { weight: r.need(`${p}ln_2.weight`, [H]), bias: r.need(`${p}ln_2.bias`, [H]) },
        mlp: {
          kind: 'dense',
          up: lazy(`${n}mlp.up_proj`, I, H, conv('mlp.c_fc', I, H), convBias('mlp.c_fc', I)),
          down: lazy(`${n}mlp.down_proj`, H, I, conv('mlp.c_proj', H, I), convBias('mlp.c_proj', H)),
        },
      });
    }
    const embedTokens = r.need('wte.weight', [c.vocabSize, H]);
    const head = c.tieEmbeddings
      ? embedTokens
      : new Reader(source, ['']).need('lm_head.weight', [c.vocabSize, H]);
    return {
      embedTokens,
      embedPositions: r.need('wpe.weight', [c.maxPositions, H]),
      blocks,
      finalNorm: { weight: r.need('ln_f.weight', [H]), bias: r.need('ln_f.bias', [H]) },
      lmHead: linear('lm_head', head, c.vocabSize, H),
    };
  }
  if (c.family === 'opt') {
    const r = new Reader(source, ['model.decoder.', 'decoder.']);
    const bias = (name: string, n: number) => (c.attentionBias ? r.need(name, [n]) : undefined);
    for (let i = 0; i < c.numLayers; i++) {
      const p = `layers.${i}.`;
      const norm = (name: string): NormParams =>
        c.normsWithoutAffine === true
          ? { weight: new Float32Array(H).fill(1) }
          : { weight: r.need(`${p}${name}.weight`, [H]), bias: r.need(`${p}${name}.bias`, [H]) };
      const proj = (hf: string, ours: string, rows: number, cols: number) =>
        lazy(
          `layers.${i}.${ours}`,
          rows,
          cols,
          () => r.need(`${p}${hf}.weight`, [rows, cols]),
          () => bias(`${p}${hf}.bias`, rows),
        );
      blocks.push({
        attentionNorm: norm('self_attn_layer_norm'),
        q: proj('self_attn.q_proj', 'self_attn.q_proj', H, H),
        k: proj('self_attn.k_proj', 'self_attn.k_proj', H, H),
        v: proj('self_attn.v_proj', 'self_attn.v_proj', H, H),
        o: proj('self_attn.out_proj', 'self_attn.o_proj', H, H),
        mlpNorm: norm('final_layer_norm'),
        mlp: {
          kind: 'dense',
          up: proj('fc1', 'mlp.up_proj', I, H),
          down: proj('fc2', 'mlp.down_proj', H, I),
        },
      });
    }
    const D = c.wordEmbedDim;
    const embedTokens = r.need('embed_tokens.weight', [c.vocabSize, D]);
    const finalWeight =
      c.normsWithoutAffine === true
        ? c.noFinalNorm === true
          ? undefined
          : new Float32Array(H).fill(1)
        : r.get('final_layer_norm.weight', [H], true);
    const head = c.tieEmbeddings
      ? embedTokens
      : new Reader(source, ['']).need('lm_head.weight', [c.vocabSize, D]);
    return {
      embedTokens,
      embedPositions: r.need('embed_positions.weight', [c.maxPositions + c.positionOffset, H]),
      ...(D === H
        ? {}
        : {
            projectIn: linear('project_in', r.need('project_in.weight', [H, D]), H, D),
            projectOut: linear('project_out', r.need('project_out.weight', [D, H]), D, H),
          }),
      blocks,
      ...(finalWeight === undefined
        ? {}
        : c.normsWithoutAffine === true
          ? { finalNorm: { weight: finalWeight } }
          : { finalNorm: { weight: finalWeight, bias: r.need('final_layer_norm.bias', [H]) } }),
      lmHead: linear('lm_head', head, c.vocabSize, D),
    };
  }
  // llama
  const r = new Reader(source, ['model.']);
  const O = c.outputWidth ?? H;
  for (let i = 0; i < c.numLayers; i++) {
    const p = `layers.${i}.`;
    const out = i === c.numLayers - 1 ? O : H;
    const proj = (name: string, rows: number, cols: number, hasBias: boolean) =>
      lazy(
        `${p}${name}`,
        rows,
        cols,
        () => r.need(`${mixtralName(p + name)}.weight`, [rows, cols]),
        () => (hasBias ? r.need(`${mixtralName(p + name)}.bias`, [rows]) : undefined),
      );
    const shortcut = (name: 'attn' | 'mlp') => {
      const cols = name === 'attn' ? H : out;
      const q = r.get(`${p}${name}_shortcut_Q`, [H, cols], true);
      if (q === undefined) return {};
      const layer = linear(`${p}${name}_shortcut`, transposeValues(q, H, cols), cols, H);
      return name === 'attn' ? { attentionShortcut: layer } : { mlpShortcut: layer };
    };
    blocks.push({
      ...shortcut('attn'),
      ...shortcut('mlp'),
      attentionNorm: { weight: r.need(`${p}input_layernorm.weight`, [H]) },
      q: proj('self_attn.q_proj', qOut, H, c.attentionBias),
      k: proj('self_attn.k_proj', kvOut, H, c.attentionBias),
      v: proj('self_attn.v_proj', kvOut, H, c.attentionBias),
      o: proj('self_attn.o_proj', H, qOut, c.attentionBias),
      mlpNorm: { weight: r.need(`${p}post_attention_layernorm.weight`, [H]) },
      mlp: llamaMlp(c, out, proj),
    });
  }
  const embedTokens = r.need('embed_tokens.weight', [c.vocabSize, H]);
  const head = c.tieEmbeddings
    ? embedTokens
    : new Reader(source, ['']).need('lm_head.weight', [c.vocabSize, O]);
  return {
    embedTokens,
    blocks,
    finalNorm: { weight: r.need('norm.weight', [O]) },
    lmHead: linear('lm_head', head, c.vocabSize, O),
  };
}

/**
 * The Hugging Face name (without `.weight`) of a decoder linear layer given its runtime name, for
 * the families that keep one tensor per projection (llama, opt; GPT-2 fuses q/k/v).
 */
export function hfLinearName(family: 'llama' | 'opt' | 'mixtral', runtime: string): string {
  if (family === 'llama') return `model.${runtime}`;
  if (family === 'mixtral') return `model.${mixtralName(runtime)}`;
  return `model.decoder.${runtime
    .replace('self_attn.o_proj', 'self_attn.out_proj')
    .replace('mlp.up_proj', 'fc1')
    .replace('mlp.down_proj', 'fc2')}`;
}

/**
 * Mixtral's names for the runtime's MoE layers: `mlp.gate` is `block_sparse_moe.gate`, expert e's
 * gate/down/up projections are `block_sparse_moe.experts.e.w1` / `w2` / `w3`.
 */
function mixtralName(runtime: string): string {
  return runtime
    .replace(/\.mlp\.gate$/, '.block_sparse_moe.gate')
    .replace(/\.mlp\.experts\.(\d+)\.gate_proj$/, '.block_sparse_moe.experts.$1.w1')
    .replace(/\.mlp\.experts\.(\d+)\.down_proj$/, '.block_sparse_moe.experts.$1.w2')
    .replace(/\.mlp\.experts\.(\d+)\.up_proj$/, '.block_sparse_moe.experts.$1.w3');
}

/** The layers of a block's MLP slot, which must be of `kind` (the family's layout). */
function mlpLayers(b: BlockParams, kind: 'dense' | 'gated'): Linear[] {
  if (b.mlp.kind !== kind)
    throw new UnsupportedModelError(`${b.mlp.kind} MLP`, `this family saves ${kind} MLPs only`);
  return mlpGroups(b.mlp).flat();
}

/**
 * A Llama block's MLP slot: gated, or with `config.moe` a Mixtral mixture of experts (router gate
 * [experts, hidden]; each expert a gated MLP) routed by softmax top-k.
 */
function llamaMlp(
  c: ModelConfig,
  out: number,
  proj: (name: string, rows: number, cols: number, hasBias: boolean) => Linear,
): MlpParams {
  const H = c.hiddenSize;
  const I = c.intermediateSize;
  if (c.moe === undefined) {
    return {
      kind: 'gated',
      gate: proj('mlp.gate_proj', I, H, c.mlpBias),
      up: proj('mlp.up_proj', I, H, c.mlpBias),
      down: proj('mlp.down_proj', out, I, c.mlpBias),
    };
  }
  const { numExperts, expertsPerToken } = c.moe;
  return {
    kind: 'moe',
    gate: proj('mlp.gate', numExperts, H, false),
    router: new TopKRouter(numExperts, expertsPerToken),
    experts: Array.from({ length: numExperts }, (_, e) => ({
      kind: 'gated' as const,
      gate: proj(`mlp.experts.${e}.gate_proj`, I, H, false),
      up: proj(`mlp.experts.${e}.up_proj`, I, H, false),
      down: proj(`mlp.experts.${e}.down_proj`, out, I, false),
    })),
  };
}

/** Dense f32 weight of a layer, whatever its format. */
function weightOf(layer: Linear): Float32Array {
  return layer.getWeight().data;
}

/**
 * The model's parameters under the Hugging Face names `save_pretrained` writes, as
 * name -> [shape, f32 values], every linear layer dense. With `linears: false` the decoder blocks'
 * linear layers are left out (packed files store them under their runtime names).
 */
export function paramsToHf(
  config: ModelConfig,
  p: ModelParams,
  options: { linears?: boolean } = {},
): Map<string, [number[], Float32Array]> {
  const withLinears = options.linears ?? true;
  const c = config;
  const H = c.hiddenSize;
  const I = c.intermediateSize;
  const out = new Map<string, [number[], Float32Array]>();
  const put = (name: string, shape: number[], values: Float32Array) => out.set(name, [shape, values]);
  const norm = (name: string, n: NormParams | undefined) => {
    if (n === undefined) return;
    put(`${name}.weight`, [n.weight.length], n.weight);
    if (n.bias !== undefined) put(`${name}.bias`, [n.bias.length], n.bias);
  };
  const lin = (name: string, layer: Linear) => {
    if (!withLinears && layer.name.startsWith('layers.')) return;
    put(`${name}.weight`, [layer.outFeatures, layer.inFeatures], weightOf(layer));
    if (layer.bias !== undefined) put(`${name}.bias`, [layer.outFeatures], layer.bias);
  };
  if (c.family === 'gpt2') {
    put('transformer.wte.weight', [c.vocabSize, H], p.embedTokens);
    put('transformer.wpe.weight', [c.maxPositions, H], p.embedPositions!);
    p.blocks.forEach((b, i) => {
      const n = `transformer.h.${i}.`;
      norm(`${n}ln_1`, b.attentionNorm);
      norm(`${n}ln_2`, b.mlpNorm);
      if (!withLinears) return;
      const qkv = new Float32Array(3 * H * H);
      [b.q, b.k, b.v].forEach((l, k) => {
        qkv.set(weightOf(l), k * H * H);
      });
      put(`${n}attn.c_attn.weight`, [H, 3 * H], transposeValues(qkv, 3 * H, H));
      const bias = new Float32Array(3 * H);
      [b.q, b.k, b.v].forEach((l, k) => {
        bias.set(l.bias!, k * H);
      });
      put(`${n}attn.c_attn.bias`, [3 * H], bias);
      put(`${n}attn.c_proj.weight`, [H, H], transposeValues(weightOf(b.o), H, H));
      put(`${n}attn.c_proj.bias`, [H], b.o.bias!);
      const [up, down] = mlpLayers(b, 'dense') as [Linear, Linear];
      put(`${n}mlp.c_fc.weight`, [H, I], transposeValues(weightOf(up), I, H));
      put(`${n}mlp.c_fc.bias`, [I], up.bias!);
      put(`${n}mlp.c_proj.weight`, [I, H], transposeValues(weightOf(down), H, I));
      put(`${n}mlp.c_proj.bias`, [H], down.bias!);
    });
    norm('transformer.ln_f', p.finalNorm);
    if (!c.tieEmbeddings) lin('lm_head', p.lmHead);
    return out;
  }
  if (c.family === 'opt') {
    const d = 'model.decoder.';
    put(`${d}embed_tokens.weight`, [c.vocabSize, c.wordEmbedDim], p.embedTokens);
    put(`${d}embed_positions.weight`, [c.maxPositions + c.positionOffset, H], p.embedPositions!);
    if (p.projectIn !== undefined) lin(`${d}project_in`, p.projectIn);
    if (p.projectOut !== undefined) lin(`${d}project_out`, p.projectOut);
    p.blocks.forEach((b, i) => {
      const n = `${d}layers.${i}.`;
      for (const layer of [b.q, b.k, b.v, b.o, ...mlpLayers(b, 'dense')])
        lin(hfLinearName('opt', layer.name), layer);
      if (c.normsWithoutAffine === true) return;
      norm(`${n}self_attn_layer_norm`, b.attentionNorm);
      norm(`${n}final_layer_norm`, b.mlpNorm);
    });
    if (c.normsWithoutAffine !== true) norm(`${d}final_layer_norm`, p.finalNorm);
    if (!c.tieEmbeddings) lin('lm_head', p.lmHead);
    return out;
  }
  // Llama and Mixtral: every module of the tree under its Hugging Face name.
  const family = c.moe === undefined ? 'llama' : 'mixtral';
  for (const { name, kind, module } of moduleTree(p)) {
    if (kind === 'embedding') put('model.embed_tokens.weight', [c.vocabSize, H], module as Float32Array);
    else if (kind === 'norm') norm(`model.${name}`, module as NormParams);
    else if (kind === 'linear') {
      const layer = module as Linear;
      if (name === 'lm_head') {
        if (!c.tieEmbeddings) lin('lm_head', layer);
      } else if (name.endsWith('_shortcut')) {
        // SliceGPT's names: x -> x Q, stored as Q [in, out] (our layers hold Q^T).
        const q = transposeValues(weightOf(layer), layer.outFeatures, layer.inFeatures);
        put(`model.${name}_Q`, [layer.inFeatures, layer.outFeatures], q);
      } else lin(hfLinearName(family, name), layer);
    }
  }
  return out;
}
