// The Llama-family architecture in TensorFlow.js, for training: the same computation as the runtime's
// TransformerLM (RMSNorm, rotate_half RoPE, grouped-query attention, SwiGLU), on tfjs tensors with
// gradients. Weights are kept [in, out] and every matMul has a custom gradient built from explicit
// transposes: on tfjs-backend-wasm a matMul with transpose flags is several times slower than
// transposing first, and tf.gather has no gradient kernel, so embeddings are a one-hot matMul.
// A block's MLP is gated (SwiGLU) or a mixture of gated experts (Mixtral; see moe-mlp.ts).

import { InvalidArgumentError, matMulOps, transposeValues } from '@sparsekit/core';
import type * as TF from '@tensorflow/tfjs-core';
import type { ModelConfig } from '../config.js';
import { UnsupportedModelError } from '../errors.js';
import { denseMatrix, Linear } from '../runtime/linear.js';
import type { MlpParams, MoeMlp } from '../runtime/mlp.js';
import { moduleTree } from '../runtime/modules.js';
import type { ModelParams, NormParams } from '../runtime/params.js';
import type { BackendRef } from '../runtime/steps.js';
import {
  type MoeOps,
  moeMlp,
  moeVariables,
  type TwinGate,
  type TwinMoe,
  type TwinRouting,
} from './moe-mlp.js';
import { initMoe, moeFromParams, moeToParams } from './moe-params.js';
import { combineLossTerms, type TwinLossOptions, type TwinLossTerms } from './twin-loss.js';

type Tfjs = typeof TF;

interface TwinBlock {
  attentionNorm: TF.Variable;
  q: TF.Variable;
  k: TF.Variable;
  v: TF.Variable;
  o: TF.Variable;
  mlpNorm: TF.Variable;
}

/** A block with a gated MLP. */
export interface TwinGatedLayer extends TwinBlock {
  gate: TF.Variable;
  up: TF.Variable;
  down: TF.Variable;
  moe?: undefined;
}

/** A block with a mixture-of-experts MLP. */
export interface TwinMoeLayer extends TwinBlock {
  moe: TwinMoe;
}

export type TwinLayer = TwinGatedLayer | TwinMoeLayer;

/** A block's module names in the runtime's tree (after `layers.{i}.`) and the twin's field for each. */
const TWIN_FIELDS = {
  input_layernorm: 'attentionNorm',
  'self_attn.q_proj': 'q',
  'self_attn.k_proj': 'k',
  'self_attn.v_proj': 'v',
  'self_attn.o_proj': 'o',
  post_attention_layernorm: 'mlpNorm',
  'mlp.gate_proj': 'gate',
  'mlp.up_proj': 'up',
  'mlp.down_proj': 'down',
} as const satisfies Record<string, Exclude<keyof TwinGatedLayer, 'moe'>>;

export interface TwinWeights {
  embed: TF.Variable;
  layers: TwinLayer[];
  norm: TF.Variable;
  /** [hidden, vocab]; absent when tied to the embedding. */
  head?: TF.Variable;
}

/** A Llama-style model on tfjs variables, trainable, convertible to and from runtime parameters. */
export class LlamaTwin {
  private readonly mm: (a: TF.Tensor, b: TF.Tensor) => TF.Tensor;
  private readonly bmm: (a: TF.Tensor, b: TF.Tensor) => TF.Tensor;
  private readonly ropeCos: TF.Tensor2D;
  private readonly ropeSin: TF.Tensor2D;
  /** [headDim, headDim]: x @ rotateHalf = concat(-x2, x1). */
  private readonly rotateHalf: TF.Tensor2D;
  /** [kvHeads * headDim, heads * headDim] 0/1 matrix copying KV heads to query heads (GQA only). */
  private readonly expandKv: TF.Tensor2D | undefined;
  private readonly moeOps: MoeOps;
  /** Set while training: gates that add noise or jitter (see `setGates`) do so only then. */
  training = false;

  constructor(
    readonly tf: Tfjs,
    readonly config: ModelConfig,
    readonly weights: TwinWeights,
  ) {
    if (config.family !== 'llama') {
      throw new InvalidArgumentError(
        'config family',
        config.family,
        "the tfjs twin implements the 'llama' family",
      );
    }
    if (config.activation !== 'silu' && config.activation !== 'relu')
      throw new InvalidArgumentError(
        'config activation',
        config.activation,
        "the tfjs twin runs 'silu' or 'relu'",
      );
    ({ mm: this.mm, bmm: this.bmm } = matMulOps(tf));
    this.moeOps = {
      tf,
      mm: this.mm,
      activate: (gate) => this.activate(gate),
      training: () => this.training,
    };
    const half = config.headDim / 2;
    const cos = new Float32Array(config.maxPositions * config.headDim);
    const sin = new Float32Array(config.maxPositions * config.headDim);
    for (let p = 0; p < config.maxPositions; p++) {
      for (let i = 0; i < half; i++) {
        const angle = Math.fround(p * Math.fround(1 / config.ropeTheta ** ((2 * i) / config.headDim)));
        for (const j of [i, i + half]) {
          cos[p * config.headDim + j] = Math.cos(angle);
          sin[p * config.headDim + j] = Math.sin(angle);
        }
      }
    }
    this.ropeCos = tf.tensor2d(cos, [config.maxPositions, config.headDim]);
    this.ropeSin = tf.tensor2d(sin, [config.maxPositions, config.headDim]);
    const r = new Float32Array(config.headDim * config.headDim);
    for (let j = 0; j < half; j++) {
      r[(j + half) * config.headDim + j] = -1;
      r[j * config.headDim + j + half] = 1;
    }
    this.rotateHalf = tf.tensor2d(r, [config.headDim, config.headDim]);
    const group = config.numHeads / config.numKvHeads;
    if (group > 1) {
      const hd = config.headDim;
      const e = new Float32Array(config.numKvHeads * hd * config.numHeads * hd);
      for (let h = 0; h < config.numHeads; h++) {
        for (let d = 0; d < hd; d++)
          e[(Math.floor(h / group) * hd + d) * config.numHeads * hd + h * hd + d] = 1;
      }
      this.expandKv = tf.tensor2d(e, [config.numKvHeads * hd, config.numHeads * hd]);
    } else this.expandKv = undefined;
  }

  /**
   * Fresh weights: normal(0, 0.02) matrices (output projections scaled by 1/sqrt(2 layers)), unit
   * norms; with `config.moe`, every block a mixture of `numExperts` gated experts of
   * `intermediateSize` channels, `expertsPerToken` chosen per token (renormalised, as Mixtral).
   */
  static init(tf: Tfjs, config: ModelConfig, seed: number): LlamaTwin {
    const c = config;
    const H = c.hiddenSize;
    let s = seed;
    const normal = (shape: number[], std: number) =>
      tf.variable(tf.randomNormal(shape, 0, std, 'float32', s++));
    const ones = () => tf.variable(tf.ones([H]));
    const std = 0.02;
    const out = std / Math.sqrt(2 * c.numLayers);
    const layers = Array.from(
      { length: c.numLayers },
      (): TwinLayer => ({
        attentionNorm: ones(),
        q: normal([H, c.numHeads * c.headDim], std),
        k: normal([H, c.numKvHeads * c.headDim], std),
        v: normal([H, c.numKvHeads * c.headDim], std),
        o: normal([c.numHeads * c.headDim, H], out),
        mlpNorm: ones(),
        ...(c.moe === undefined
          ? {
              gate: normal([H, c.intermediateSize], std),
              up: normal([H, c.intermediateSize], std),
              down: normal([c.intermediateSize, H], out),
            }
          : { moe: initMoe(c, normal, std, out) }),
      }),
    );
    return new LlamaTwin(tf, config, {
      embed: normal([c.vocabSize, H], std),
      layers,
      norm: ones(),
      ...(c.tieEmbeddings ? {} : { head: normal([H, c.vocabSize], std) }),
    });
  }

  /**
   * The twin of a runtime model's parameters (dense weights; copies), read off the module tree:
   * every module must be one the twin has (`TWIN_FIELDS`, or a mixture of gated experts behind a
   * `TopKRouter`), so a model the twin cannot train (another router, SliceGPT's shortcuts) is
   * refused, naming the module.
   */
  static fromParams(tf: Tfjs, config: ModelConfig, p: ModelParams): LlamaTwin {
    const lin = (l: Linear) =>
      tf.variable(
        tf.tensor2d(transposeValues(l.getWeight().data, l.outFeatures, l.inFeatures), [
          l.inFeatures,
          l.outFeatures,
        ]),
      );
    const c = config;
    const layers: (Partial<Omit<TwinGatedLayer, 'moe'>> & { moe?: TwinMoe })[] = p.blocks.map(() => ({}));
    const top: Partial<TwinWeights> = {};
    const moeSlots: string[] = [];
    for (const { name, kind, module } of moduleTree(p)) {
      const inBlock = /^layers\.(\d+)\.(.+)$/.exec(name);
      const field = inBlock === null ? undefined : TWIN_FIELDS[inBlock[2] as keyof typeof TWIN_FIELDS];
      if (kind === 'block' || kind === 'attention') continue;
      // The router gate, router, experts and their layers of a mixture read below.
      if (moeSlots.some((slot) => name.startsWith(`${slot}.`))) continue;
      if (kind === 'mlp') {
        const mlp = module as MlpParams;
        if (mlp.kind === 'moe' && inBlock !== null) {
          layers[Number(inBlock[1])]!.moe = moeFromParams(tf, name, mlp as MoeMlp);
          moeSlots.push(name);
        } else if (mlp.kind !== 'gated')
          throw new UnsupportedModelError(
            `${mlp.kind} MLP (${name})`,
            'the tfjs twin trains gated (Llama) MLPs and mixtures of gated experts only',
          );
        continue;
      }
      if (kind === 'embedding' && name === 'embed_tokens')
        top.embed = tf.variable(tf.tensor2d(module as Float32Array, [c.vocabSize, c.hiddenSize]));
      else if (kind === 'norm' && name === 'norm')
        top.norm = tf.variable(tf.tensor1d((module as NormParams).weight));
      else if (kind === 'linear' && name === 'lm_head') {
        if (!c.tieEmbeddings) top.head = lin(module as Linear);
      } else if (field !== undefined && inBlock !== null) {
        layers[Number(inBlock[1])]![field] =
          kind === 'norm' ? tf.variable(tf.tensor1d((module as NormParams).weight)) : lin(module as Linear);
      } else
        throw new UnsupportedModelError(
          `module ${name} (${kind})`,
          'the tfjs twin has no counterpart for it',
        );
    }
    return new LlamaTwin(tf, config, {
      embed: top.embed!,
      layers: layers as TwinLayer[],
      norm: top.norm!,
      ...(top.head === undefined ? {} : { head: top.head }),
    });
  }

  /** Runtime parameters holding copies of the current weights (dense f32), under the tree's names. */
  toParams(kernels: BackendRef): ModelParams {
    const c = this.config;
    const read = (v: TF.Variable) => new Float32Array(v.dataSync() as Float32Array);
    const lin = (name: string, v: TF.Variable) => {
      const [inF, outF] = v.shape as [number, number];
      return new Linear(
        name,
        denseMatrix(transposeValues(read(v), inF, outF), outF, inF),
        undefined,
        kernels,
      );
    };
    const embedTokens = read(this.weights.embed);
    return {
      embedTokens,
      blocks: this.weights.layers.map((l, i) => {
        const at = (module: keyof typeof TWIN_FIELDS, v: TF.Variable) => lin(`layers.${i}.${module}`, v);
        return {
          attentionNorm: { weight: read(l.attentionNorm) },
          q: at('self_attn.q_proj', l.q),
          k: at('self_attn.k_proj', l.k),
          v: at('self_attn.v_proj', l.v),
          o: at('self_attn.o_proj', l.o),
          mlpNorm: { weight: read(l.mlpNorm) },
          mlp:
            l.moe === undefined
              ? {
                  kind: 'gated' as const,
                  gate: at('mlp.gate_proj', l.gate),
                  up: at('mlp.up_proj', l.up),
                  down: at('mlp.down_proj', l.down),
                }
              : moeToParams(l.moe, `layers.${i}.mlp`, kernels),
        };
      }),
      finalNorm: { weight: read(this.weights.norm) },
      lmHead:
        this.weights.head === undefined
          ? new Linear('lm_head', denseMatrix(embedTokens, c.vocabSize, c.hiddenSize), undefined, kernels)
          : lin('lm_head', this.weights.head),
    };
  }

  /**
   * Put gate `make(block)` in every MoE layer (another router than Mixtral's top-k, e.g. moe-router's
   * `trainableGate`); its variables join `variables()`, and `toParams` gives the slot its router.
   * A previous gate's variables are disposed.
   */
  setGates(make: (block: number) => TwinGate): void {
    for (const [block, l] of this.weights.layers.entries()) {
      if (l.moe === undefined) continue;
      for (const v of l.moe.router?.variables() ?? []) v.dispose();
      l.moe.router = make(block);
    }
  }

  /** Every trainable variable. */
  variables(): TF.Variable[] {
    const w = this.weights;
    return [
      w.embed,
      ...w.layers.flatMap((l) => [
        l.attentionNorm,
        l.q,
        l.k,
        l.v,
        l.o,
        l.mlpNorm,
        ...(l.moe === undefined ? [l.gate, l.up, l.down] : moeVariables(l.moe)),
      ]),
      w.norm,
      ...(w.head === undefined ? [] : [w.head]),
    ];
  }

  private rmsNorm(x: TF.Tensor, weight: TF.Variable): TF.Tensor {
    const tf = this.tf;
    const variance = tf.mean(tf.square(x), -1, true);
    return tf.mul(tf.mul(x, tf.rsqrt(tf.add(variance, this.config.normEps))), weight);
  }

  private rope(x: TF.Tensor, seq: number): TF.Tensor {
    // x [batch, heads, seq, headDim]: x * cos + rotate_half(x) * sin, with rotate_half as a matMul
    // by a constant signed permutation (tf.split along the last axis is very slow on wasm).
    const tf = this.tf;
    const [batch, heads] = x.shape as [number, number];
    const hd = this.config.headDim;
    const cos = tf.slice(this.ropeCos, [0, 0], [seq, -1]);
    const sin = tf.slice(this.ropeSin, [0, 0], [seq, -1]);
    const flat = tf.reshape(x, [batch * heads * seq, hd]);
    const rotated = tf.reshape(this.mm(flat, this.rotateHalf), [batch, heads, seq, hd]);
    return tf.add(tf.mul(x, cos), tf.mul(rotated, sin));
  }

  /**
   * The MLP activation: the config's ('silu' or 'relu'; ReLU-fication sets 'relu'), and with
   * `fatRelu` a ReLU shifted to threshold T (FATReLU: x where x > T, else 0; ProSparse's last stage).
   */
  fatRelu: number | undefined;

  private activate(gate: TF.Tensor): TF.Tensor {
    const tf = this.tf;
    if (this.fatRelu !== undefined) return tf.mul(gate, tf.cast(tf.greater(gate, this.fatRelu), 'float32'));
    if (this.config.activation === 'relu') return tf.relu(gate);
    return tf.mul(gate, tf.sigmoid(gate));
  }

  /**
   * Logits [batch * seq, vocab] for token ids [batch, seq] (call inside tf.tidy or a gradient).
   * `taps`, when given, receives each block's act(gate) [batch * seq, intermediate] (a mixture's:
   * [batch * seq, experts * intermediate], zero where an expert was not chosen); `routing`, when
   * given, each MoE block's router logits, probabilities and top-k mask; `hidden`, when given, each
   * block's output on the residual stream [batch * seq, hidden] (what layer-wise distillation such
   * as SquareHead matches).
   */
  logits(ids: TF.Tensor2D, taps?: TF.Tensor[], routing?: TwinRouting[], hidden?: TF.Tensor[]): TF.Tensor2D {
    const tf = this.tf;
    const c = this.config;
    const [batch, seq] = ids.shape;
    const n = batch * seq;
    const hd = c.headDim;
    const oneHot = tf.cast(tf.oneHot(tf.reshape(ids, [n]), c.vocabSize), 'float32');
    let x = this.mm(oneHot, this.weights.embed);
    const mask = tf.mul(tf.sub(1, tf.linalg.bandPart(tf.ones([seq, seq]), -1, 0)), -1e9);
    const heads = (t: TF.Tensor, count: number) =>
      tf.transpose(tf.reshape(t, [batch, seq, count, hd]), [0, 2, 1, 3]);
    for (const [block, l] of this.weights.layers.entries()) {
      const h = this.rmsNorm(x, l.attentionNorm);
      const q = this.rope(heads(this.mm(h, l.q), c.numHeads), seq);
      // Grouped-query attention: each KV head's columns are copied to its query heads by a matMul
      // with a constant 0/1 matrix (concat or tile would need SplitV or rank-5 gradients, slow or
      // missing on wasm).
      const expand = (t: TF.Tensor) => (this.expandKv === undefined ? t : this.mm(t, this.expandKv));
      const k = this.rope(heads(expand(this.mm(h, l.k)), c.numHeads), seq);
      const v = heads(expand(this.mm(h, l.v)), c.numHeads);
      const scores = tf.add(tf.mul(this.bmm(q, tf.transpose(k, [0, 1, 3, 2])), 1 / Math.sqrt(hd)), mask);
      const attended = this.bmm(tf.softmax(scores), v);
      const merged = tf.reshape(tf.transpose(attended, [0, 2, 1, 3]), [n, c.numHeads * hd]);
      x = tf.add(x, this.mm(merged, l.o));
      const m = this.rmsNorm(x, l.mlpNorm);
      if (l.moe !== undefined) {
        x = tf.add(x, moeMlp(this.moeOps, l.moe, m, routing, taps, block));
        hidden?.push(x);
        continue;
      }
      const act = this.activate(this.mm(m, l.gate));
      taps?.push(act);
      const inner = tf.mul(act, this.mm(m, l.up));
      x = tf.add(x, this.mm(inner, l.down));
      hidden?.push(x);
    }
    const head = this.weights.head ?? tf.transpose(this.weights.embed);
    return this.mm(this.rmsNorm(x, this.weights.norm), head) as TF.Tensor2D;
  }

  /**
   * Mean cross-entropy (nats) of predicting `targets` [batch, seq] from `inputs` [batch, seq], plus
   * `activationL1` times the sum over blocks of the mean |act(gate)| (ProSparse's sparsity
   * regularisation), `loadBalance` times the MoE load-balancing loss and `routerZ` times the router
   * z-loss (each default 0; `lossTerms` gives the components).
   */
  loss(inputs: TF.Tensor2D, targets: TF.Tensor2D, options: TwinLossOptions = {}): TF.Scalar {
    return this.lossTerms(inputs, targets, options).total;
  }

  /**
   * `loss` and its unweighted components. Inside `tf.variableGrads(() => ...)` the components are
   * freed with the gradient's scope unless kept (`tf.keep`).
   */
  lossTerms(inputs: TF.Tensor2D, targets: TF.Tensor2D, options: TwinLossOptions = {}): TwinLossTerms {
    const tf = this.tf;
    const l1 = options.activationL1 ?? 0;
    const taps: TF.Tensor[] = [];
    const routing: TwinRouting[] = [];
    const logits = this.logits(inputs, l1 > 0 ? taps : undefined, routing);
    return combineLossTerms(tf, logits, targets, taps, routing, options);
  }

  dispose(): void {
    for (const v of this.variables()) v.dispose();
    this.ropeCos.dispose();
    this.ropeSin.dispose();
    this.rotateHalf.dispose();
    this.expandKv?.dispose();
  }
}
