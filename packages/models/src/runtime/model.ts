import {
  type BlockwiseLM,
  type Calibratable,
  type CalibrationHook,
  InvalidArgumentError,
  type NarrowableLM,
  type ProgressOptions,
  reportProgress,
  ShapeMismatchError,
  type SliceableLM,
  type StreamPoint,
  Tensor,
} from '@sparsekit/core';
import { type ModelConfig, validateConfig } from '../config.js';
import { attend } from './attention.js';
import { KvCache } from './kv-cache.js';
import { type KernelRef, Linear, type LinearKernel } from './linear.js';
import { removeHeads, removeMlpChannels } from './narrowing.js';
import { activate, addInPlace, layerNorm, mulInPlace, rmsNorm, ropeTables } from './ops.js';
import type { BlockParams, ModelParams, NormParams } from './params.js';
import { embeddingWidth, foldNorms, rotateStream, streamWidth } from './slicing.js';

/**
 * A decoder-only transformer (GPT-2, OPT and Llama blocks) on typed arrays. Linear layers run on the
 * kernel of their weight's format, so a layer packed as CSR, N:M or bitmask runs sparse.
 */
export class TransformerLM implements BlockwiseLM, SliceableLM, NarrowableLM, Calibratable {
  readonly vocabSize: number;
  readonly maxSequenceLength: number;
  readonly numBlocks: number;
  private cfg: ModelConfig;
  private readonly rope: { cos: Float32Array; sin: Float32Array } | undefined;

  /** `kernels` is shared with the model's Linear layers (see `kernelRef`). */
  constructor(
    config: ModelConfig,
    readonly params: ModelParams,
    private readonly kernels: KernelRef,
  ) {
    this.cfg = validateConfig(config);
    this.vocabSize = config.vocabSize;
    this.maxSequenceLength = config.maxPositions;
    this.numBlocks = config.numLayers;
    if (params.blocks.length !== config.numLayers) {
      throw new ShapeMismatchError([config.numLayers], [params.blocks.length], 'blocks');
    }
    this.rope =
      config.positions === 'rotary'
        ? ropeTables(config.maxPositions, config.headDim, config.ropeTheta)
        : undefined;
  }

  /** The architecture; `hiddenSize` follows the stream once it is sliced. */
  get config(): ModelConfig {
    return this.cfg;
  }

  /** Width of the hidden states entering block 0. */
  get hiddenSize(): number {
    return embeddingWidth(this.cfg, this.params);
  }

  foldNorms(): void {
    this.cfg = foldNorms(this.cfg, this.params);
  }

  streamWidth(point: StreamPoint): number {
    return streamWidth(this.cfg, this.params, point);
  }

  rotateStream(point: StreamPoint, q: Tensor<'f32'>): void {
    this.cfg = rotateStream(this.cfg, this.params, point, q, this.kernels);
  }

  get blockShape(): { mlpChannels: number; heads: number; kvHeads: number; headDim: number } {
    const c = this.cfg;
    return { mlpChannels: c.intermediateSize, heads: c.numHeads, kvHeads: c.numKvHeads, headDim: c.headDim };
  }

  removeMlpChannels(channels: readonly (readonly number[])[]): void {
    this.cfg = removeMlpChannels(this.cfg, this.params.blocks, channels);
  }

  removeHeads(heads: readonly (readonly number[])[]): void {
    this.cfg = removeHeads(this.cfg, this.params.blocks, heads);
  }

  parameterCount(): number {
    const p = this.params;
    const linear = (l: Linear | undefined) =>
      l === undefined ? 0 : l.inFeatures * l.outFeatures + (l.bias?.length ?? 0);
    const norm = (n: NormParams | undefined) =>
      n === undefined ? 0 : n.weight.length + (n.bias?.length ?? 0);
    let count = p.embedTokens.length + (p.embedPositions?.length ?? 0) + norm(p.finalNorm);
    count += linear(p.projectIn) + linear(p.projectOut) + (this.cfg.tieEmbeddings ? 0 : linear(p.lmHead));
    for (const b of p.blocks) {
      count += norm(b.attentionNorm) + norm(b.mlpNorm);
      for (const l of [b.q, b.k, b.v, b.o, b.gate, b.up, b.down, b.attentionShortcut, b.mlpShortcut])
        count += linear(l);
    }
    return count;
  }

  checkpoint(): () => void {
    const p = this.params;
    const cfg = this.cfg;
    const arrays = { embedTokens: p.embedTokens, embedPositions: p.embedPositions, finalNorm: p.finalNorm };
    const blocks = p.blocks.map((b) => ({ ...b }));
    const layers = [p.lmHead, p.projectIn, p.projectOut, ...p.blocks.flatMap((b) => Object.values(b))]
      .filter((l): l is Linear => l instanceof Linear)
      .map((l) => l.checkpoint());
    return () => {
      this.cfg = cfg;
      Object.assign(p, arrays);
      p.blocks.forEach((b, i) => {
        for (const key of Object.keys(b) as (keyof BlockParams)[]) if (!(key in blocks[i]!)) delete b[key];
        Object.assign(b, blocks[i]);
      });
      for (const restore of layers) restore();
    };
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
    for (let i = 0; i < this.numBlocks; i++) {
      hidden = this.mlpHalf(i, this.attentionHalf(i, hidden, batch, seq, cache, hook, i), batch * seq, hook);
    }
    cache.length += seq;
    const width = hidden.length / (batch * seq);
    return this.head(new Tensor('f32', [batch, seq, width], hidden)).reshape([batch * seq, this.vocabSize]);
  }

  embed(tokenIds: Tensor<'i32'>): Tensor<'f32'> {
    const [batch, seq] = this.checkTokens(tokenIds);
    return new Tensor('f32', [batch, seq, this.hiddenSize], this.embedAt(tokenIds, 0));
  }

  runBlock(index: number, hidden: Tensor<'f32'>, hook?: CalibrationHook): Tensor<'f32'> {
    return this.runMlpHalf(index, this.runAttentionHalf(index, hidden, hook), hook);
  }

  runAttentionHalf(index: number, hidden: Tensor<'f32'>, hook?: CalibrationHook): Tensor<'f32'> {
    this.block(index);
    const input: StreamPoint = index === 0 ? { at: 'embeddings' } : { at: 'mlp', block: index - 1 };
    const [batch, seq] = this.checkHidden(hidden, this.streamWidth(input));
    const cache = new KvCache(1, batch, this.config.numKvHeads, seq, this.config.headDim);
    const mid = this.attentionHalf(index, hidden.data.slice(), batch, seq, cache, hook, 0);
    return new Tensor('f32', [batch, seq, mid.length / (batch * seq)], mid);
  }

  runMlpHalf(index: number, mid: Tensor<'f32'>, hook?: CalibrationHook): Tensor<'f32'> {
    const [batch, seq] = this.checkHidden(mid, this.streamWidth({ at: 'attention', block: index }));
    const out = this.mlpHalf(index, mid.data.slice(), batch * seq, hook);
    return new Tensor('f32', [batch, seq, out.length / (batch * seq)], out);
  }

  head(hidden: Tensor<'f32'>): Tensor<'f32'> {
    const p = this.params;
    const tokens = hidden.size / hidden.shape.at(-1)!;
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

  private checkHidden(hidden: Tensor<'f32'>, width: number): [number, number] {
    if (hidden.shape.length !== 3 || hidden.shape[2] !== width) {
      throw new InvalidArgumentError('hidden shape', hidden.shape, `must be [batch, seq, ${width}]`);
    }
    return [hidden.shape[0]!, hidden.shape[1]!];
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
    const width = p.embedTokens.length / c.vocabSize;
    let h: Float32Array = new Float32Array(batch * seq * width);
    for (let t = 0; t < batch * seq; t++) {
      const id = tokenIds.data[t]!;
      h.set(p.embedTokens.subarray(id * width, (id + 1) * width), t * width);
    }
    if (p.projectIn !== undefined) h = p.projectIn.forward(h, batch * seq);
    if (p.embedPositions !== undefined) {
      const hidden = h.length / (batch * seq);
      for (let t = 0; t < batch * seq; t++) {
        const row = (start + (t % seq) + c.positionOffset) * hidden;
        for (let i = 0; i < hidden; i++) h[t * hidden + i]! += p.embedPositions[row + i]!;
      }
    }
    return h;
  }

  private norm(x: Float32Array, n: NormParams): Float32Array {
    const c = this.config;
    const width = n.weight.length;
    return c.norm === 'rmsnorm'
      ? rmsNorm(x, width, n.weight, c.normEps, undefined, c.normWidth ?? width)
      : layerNorm(x, width, n.weight, n.bias, c.normEps);
  }

  private run(layer: Linear, x: Float32Array, tokens: number, hook: CalibrationHook | undefined) {
    hook?.(layer, new Tensor('f32', [tokens, layer.inFeatures], x));
    return layer.forward(x, tokens);
  }

  /** Block `index` up to its attention residual (plus the post-norm, in post-norm models). */
  private attentionHalf(
    index: number,
    hidden: Float32Array,
    batch: number,
    seq: number,
    cache: KvCache,
    hook: CalibrationHook | undefined,
    cacheLayer: number,
  ): Float32Array {
    const b = this.block(index);
    const tokens = batch * seq;
    const pre = this.config.preNorm;
    const a = pre ? this.norm(hidden, b.attentionNorm) : hidden;
    const attended = attend(
      this.config,
      cacheLayer,
      this.run(b.q, a, tokens, hook),
      this.run(b.k, a, tokens, hook),
      this.run(b.v, a, tokens, hook),
      batch,
      seq,
      cache,
      this.rope,
      this.kernels.current,
    );
    const residual = b.attentionShortcut?.forward(hidden, tokens) ?? hidden;
    const h = addInPlace(residual, this.run(b.o, attended, tokens, hook));
    return pre ? h : this.norm(h, b.attentionNorm);
  }

  /** The rest of block `index`: the MLP and its residual. */
  private mlpHalf(
    index: number,
    h: Float32Array,
    tokens: number,
    hook: CalibrationHook | undefined,
  ): Float32Array {
    const b = this.block(index);
    const pre = this.config.preNorm;
    const m = pre ? this.norm(h, b.mlpNorm) : h;
    const gate =
      b.gate === undefined ? undefined : activate(this.run(b.gate, m, tokens, hook), this.config.activation);
    const up = this.run(b.up, m, tokens, hook);
    const inner = gate === undefined ? activate(up, this.config.activation) : mulInPlace(gate, up);
    const residual = b.mlpShortcut?.forward(h, tokens) ?? h;
    const out = addInPlace(residual, this.run(b.down, inner, tokens, hook));
    return pre ? out : this.norm(out, b.mlpNorm);
  }
}
