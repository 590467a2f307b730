import {
  type BlockwiseLM,
  type Calibratable,
  type CalibrationHook,
  InvalidArgumentError,
  type ProgressOptions,
  reportProgress,
  ShapeMismatchError,
  Tensor,
} from '@sparsekit/core';
import { type ModelConfig, validateConfig } from '../config.js';
import { attend } from './attention.js';
import { KvCache } from './kv-cache.js';
import type { KernelRef, Linear, LinearKernel } from './linear.js';
import { activate, addInPlace, layerNorm, mulInPlace, rmsNorm, ropeTables } from './ops.js';

export interface NormParams {
  weight: Float32Array;
  bias?: Float32Array;
}

/** One decoder block. Names follow Llama: q/k/v/o_proj, gate/up/down_proj (GPT-2's c_fc is `up`). */
export interface BlockParams {
  /** Before attention (pre-norm) or after the attention residual (post-norm). */
  attentionNorm: NormParams;
  q: Linear;
  k: Linear;
  v: Linear;
  o: Linear;
  mlpNorm: NormParams;
  gate?: Linear;
  up: Linear;
  down: Linear;
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

/**
 * A decoder-only transformer (GPT-2, OPT and Llama blocks) on typed arrays. Linear layers run on the
 * kernel of their weight's format, so a layer packed as CSR, N:M or bitmask runs sparse.
 */
export class TransformerLM implements BlockwiseLM, Calibratable {
  readonly vocabSize: number;
  readonly maxSequenceLength: number;
  readonly hiddenSize: number;
  readonly numBlocks: number;
  private readonly rope: { cos: Float32Array; sin: Float32Array } | undefined;

  /** `kernels` is shared with the model's Linear layers (see `kernelRef`). */
  constructor(
    readonly config: ModelConfig,
    readonly params: ModelParams,
    private readonly kernels: KernelRef,
  ) {
    validateConfig(config);
    this.vocabSize = config.vocabSize;
    this.maxSequenceLength = config.maxPositions;
    this.hiddenSize = config.hiddenSize;
    this.numBlocks = config.numLayers;
    if (params.blocks.length !== config.numLayers) {
      throw new ShapeMismatchError([config.numLayers], [params.blocks.length], 'blocks');
    }
    this.rope =
      config.positions === 'rotary'
        ? ropeTables(config.maxPositions, config.headDim, config.ropeTheta)
        : undefined;
  }

  /** What runs the linear layers: the reference kernels, or e.g. a wasm backend. */
  get kernel(): LinearKernel {
    return this.kernels.current;
  }

  set kernel(kernel: LinearKernel) {
    this.kernels.current = kernel;
  }

  /** Every linear layer of the decoder blocks (the LM head and OPT's projections excluded). */
  linearLayers(): readonly Linear[] {
    return this.params.blocks.flatMap((_, i) => this.blockLinearLayers(i));
  }

  blockLinearLayers(index: number): readonly Linear[] {
    const b = this.block(index);
    return [b.q, b.k, b.v, b.o, ...(b.gate === undefined ? [] : [b.gate]), b.up, b.down];
  }

  /** A new cache for `batch` sequences of up to the model's maximum length. */
  createCache(batch: number): KvCache {
    const c = this.config;
    return new KvCache(c.numLayers, batch, c.numKvHeads, c.maxPositions, c.headDim);
  }

  logits(tokenIds: Tensor<'i32'>): Tensor<'f32'> {
    const [batch, seq] = this.checkTokens(tokenIds);
    return this.forward(tokenIds, this.createCache(batch)).reshape([batch, seq, this.vocabSize]);
  }

  /**
   * Logits [batch * seq, vocab] for tokens that continue the sequences in `cache` (which is
   * extended). Prefill with the prompt, then call with one token per sequence to decode.
   */
  forward(tokenIds: Tensor<'i32'>, cache: KvCache, hook?: CalibrationHook): Tensor<'f32'> {
    const [batch, seq] = this.checkTokens(tokenIds);
    if (batch !== cache.batch) throw new ShapeMismatchError([cache.batch], [batch], 'batch (cache)');
    cache.reserve(seq);
    let hidden = this.embedAt(tokenIds, cache.length);
    for (let i = 0; i < this.numBlocks; i++) hidden = this.blockForward(i, hidden, batch, seq, cache, hook);
    cache.length += seq;
    return this.head(new Tensor('f32', [batch, seq, this.hiddenSize], hidden)).reshape([
      batch * seq,
      this.vocabSize,
    ]);
  }

  embed(tokenIds: Tensor<'i32'>): Tensor<'f32'> {
    const [batch, seq] = this.checkTokens(tokenIds);
    return new Tensor('f32', [batch, seq, this.hiddenSize], this.embedAt(tokenIds, 0));
  }

  runBlock(index: number, hidden: Tensor<'f32'>, hook?: CalibrationHook): Tensor<'f32'> {
    const [batch, seq, width] = hidden.shape as [number, number, number];
    if (hidden.shape.length !== 3 || width !== this.hiddenSize) {
      throw new InvalidArgumentError(
        'hidden shape',
        hidden.shape,
        `must be [batch, seq, ${this.hiddenSize}]`,
      );
    }
    const cache = new KvCache(1, batch, this.config.numKvHeads, seq, this.config.headDim);
    const out = this.blockForward(index, hidden.data.slice(), batch, seq, cache, hook, 0);
    return new Tensor('f32', [batch, seq, width], out);
  }

  head(hidden: Tensor<'f32'>): Tensor<'f32'> {
    const p = this.params;
    const tokens = hidden.size / this.hiddenSize;
    let h = hidden.data;
    if (p.finalNorm !== undefined) h = this.norm(h, p.finalNorm);
    if (p.projectOut !== undefined) h = p.projectOut.forward(h, tokens);
    const logits = p.lmHead.forward(h, tokens);
    return new Tensor('f32', [...hidden.shape.slice(0, -1), this.vocabSize], logits);
  }

  async calibrate(
    batches: Iterable<Tensor<'i32'>> | AsyncIterable<Tensor<'i32'>>,
    hook: CalibrationHook,
    options: ProgressOptions & { filter?: (name: string) => boolean } = {},
  ): Promise<void> {
    const filter = options.filter;
    const filtered: CalibrationHook =
      filter === undefined ? hook : (layer, x) => filter(layer.name) && hook(layer, x);
    let n = 0;
    for await (const batch of batches) {
      const [b] = this.checkTokens(batch);
      this.forward(batch, this.createCache(b), filtered);
      reportProgress(options, { stage: 'calibrate', current: ++n, unit: 'batch' });
    }
  }

  private block(index: number): BlockParams {
    const b = this.params.blocks[index];
    if (b === undefined)
      throw new InvalidArgumentError('block index', index, `must be in [0, ${this.numBlocks})`);
    return b;
  }

  private checkTokens(tokenIds: Tensor<'i32'>): [number, number] {
    if (tokenIds.shape.length !== 2) {
      throw new InvalidArgumentError('token ids shape', tokenIds.shape, 'must be [batch, seq]');
    }
    const [batch, seq] = tokenIds.shape as [number, number];
    if (seq > this.maxSequenceLength) {
      throw new InvalidArgumentError('sequence length', seq, `must be at most ${this.maxSequenceLength}`);
    }
    for (let i = 0; i < tokenIds.size; i++) {
      const id = tokenIds.data[i]!;
      if (id < 0 || id >= this.vocabSize) {
        throw new InvalidArgumentError(
          'token id',
          id,
          `must be in [0, ${this.vocabSize}) (at position ${i})`,
        );
      }
    }
    return [batch, seq];
  }

  private embedAt(tokenIds: Tensor<'i32'>, start: number): Float32Array {
    const c = this.config;
    const p = this.params;
    const [batch, seq] = tokenIds.shape as [number, number];
    const width = c.wordEmbedDim;
    let h: Float32Array = new Float32Array(batch * seq * width);
    for (let t = 0; t < batch * seq; t++) {
      const id = tokenIds.data[t]!;
      h.set(p.embedTokens.subarray(id * width, (id + 1) * width), t * width);
    }
    if (p.projectIn !== undefined) h = p.projectIn.forward(h, batch * seq);
    if (p.embedPositions !== undefined) {
      const hidden = c.hiddenSize;
      for (let t = 0; t < batch * seq; t++) {
        const row = (start + (t % seq) + c.positionOffset) * hidden;
        for (let i = 0; i < hidden; i++) h[t * hidden + i]! += p.embedPositions[row + i]!;
      }
    }
    return h;
  }

  private norm(x: Float32Array, n: NormParams): Float32Array {
    const c = this.config;
    return c.norm === 'rmsnorm'
      ? rmsNorm(x, c.hiddenSize, n.weight, c.normEps)
      : layerNorm(x, c.hiddenSize, n.weight, n.bias, c.normEps);
  }

  private blockForward(
    index: number,
    hidden: Float32Array,
    batch: number,
    seq: number,
    cache: KvCache,
    hook: CalibrationHook | undefined,
    cacheLayer = index,
  ): Float32Array {
    const b = this.block(index);
    const tokens = batch * seq;
    const run = (layer: Linear, x: Float32Array) => {
      hook?.(layer, new Tensor('f32', [tokens, layer.inFeatures], x));
      return layer.forward(x, tokens);
    };
    const pre = this.config.preNorm;
    // Attention.
    const a = pre ? this.norm(hidden, b.attentionNorm) : hidden;
    const attended = attend(
      this.config,
      cacheLayer,
      run(b.q, a),
      run(b.k, a),
      run(b.v, a),
      batch,
      seq,
      cache,
      this.rope,
    );
    let h = addInPlace(hidden, run(b.o, attended));
    if (!pre) h = this.norm(h, b.attentionNorm);
    // MLP.
    const m = pre ? this.norm(h, b.mlpNorm) : h;
    const gate = b.gate === undefined ? undefined : activate(run(b.gate, m), this.config.activation);
    const up = run(b.up, m);
    const inner = gate === undefined ? activate(up, this.config.activation) : mulInPlace(gate, up);
    h = addInPlace(h, run(b.down, inner));
    if (!pre) h = this.norm(h, b.mlpNorm);
    return h;
  }
}
