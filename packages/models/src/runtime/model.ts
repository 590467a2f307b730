import {
  type BlockwiseLM,
  type Calibratable,
  type CalibrationHook,
  calibrationHooks,
  type ExpertPrunableLM,
  type HasModules,
  Hooks,
  InvalidArgumentError,
  type KvPolicy,
  type ModuleEntry,
  type NarrowableLM,
  type ProgressOptions,
  type RebuildRouter,
  type RunOptions,
  reportProgress,
  ShapeMismatchError,
  type SliceableLM,
  type StreamPoint,
  Tensor,
} from '@sparsekit/core';
import type { AnyBackend, AttentionMask } from '@sparsekit/sparse-formats';
import { type ModelConfig, validateConfig } from '../config.js';
import { inverseFrequencies } from '../rope.js';
import { attentionHalf, mlpHalf, norm } from './block.js';
import { KvCache, type KvCacheOptions } from './kv-cache.js';
import type { Linear } from './linear.js';
import { mlpGroups } from './mlp.js';
import { countParameters, linearModules, moduleTree } from './modules.js';
import { removeExperts, removeHeads, removeMlpChannels } from './narrowing.js';
import { ropeTables } from './ops.js';
import type { BlockParams, ModelParams } from './params.js';
import { hookAt, type Pass } from './pass.js';
import { embeddingWidth, foldNorms, rotateStream, streamWidth } from './slicing.js';
import { type BackendRef, runAsync, runSync, type SparseDecode, type Steps } from './steps.js';

/** Options of a forward call: this call's hooks, and the attention mask for its queries. */
export interface ForwardOptions extends RunOptions {
  /**
   * Which cached entries each new token reads (default causal: every earlier one). Indices count
   * the entries held in the cache, which are the positions until entries are evicted.
   */
  mask?: AttentionMask;
  /** At decode (one new token per sequence): which entries to read and which to evict (see `KvPolicy`). */
  kvPolicy?: KvPolicy;
}

/**
 * A decoder-only transformer (GPT-2, OPT and Llama blocks) on typed arrays. Every product runs on
 * the model's backend (`model.backend`), each linear layer in its weight's format, so a layer packed
 * as CSR, N:M or bitmask runs sparse. Hooks registered on `model.hooks` (or passed to one call) see
 * and may replace the tensors at every named site (see `Hooks`). The synchronous methods need a
 * synchronous backend; `forwardAsync`, `logitsAsync` and `generateAsync` run on either flavour.
 */
export class TransformerLM
  implements BlockwiseLM, SliceableLM, NarrowableLM, ExpertPrunableLM, Calibratable, HasModules
{
  readonly vocabSize: number;
  readonly maxSequenceLength: number;
  readonly numBlocks: number;
  private cfg: ModelConfig;
  /** Hooks that apply to every call (see `Hooks.add`). */
  readonly hooks = new Hooks();
  /**
   * Where the model was loaded from (`loadHfModel` sets it): its folder and raw config.json, so that
   * `saveModel` keeps the fields the runtime does not use and copies the tokenizer and generation files.
   */
  source: { dir: string; config: Record<string, unknown> } | undefined;
  private readonly invFreqs: Float32Array | undefined;
  private rope: { cos: Float32Array; sin: Float32Array } | undefined;
  private ropeLength = 0;

  /** `backends` is shared with the model's Linear layers (see `backendRef`). */
  constructor(
    config: ModelConfig,
    readonly params: ModelParams,
    private readonly backends: BackendRef,
  ) {
    this.cfg = validateConfig(config);
    this.vocabSize = config.vocabSize;
    this.maxSequenceLength = config.maxPositions;
    this.numBlocks = config.numLayers;
    if (params.blocks.length !== config.numLayers) {
      throw new ShapeMismatchError([config.numLayers], [params.blocks.length], 'blocks');
    }
    this.invFreqs =
      config.positions === 'rotary'
        ? inverseFrequencies(config.headDim, config.ropeTheta, config.ropeScaling)
        : undefined;
  }

  /**
   * Rotary tables covering positions [0, positions), computed on demand and grown by doubling (a
   * model declaring a long context pays only for the positions it runs).
   */
  private ropeUpTo(positions: number): { cos: Float32Array; sin: Float32Array } | undefined {
    if (this.invFreqs === undefined) return undefined;
    if (this.rope === undefined || this.ropeLength < positions) {
      let length = Math.max(this.ropeLength, 128);
      while (length < positions) length *= 2;
      length = Math.min(length, this.config.maxPositions);
      this.rope = ropeTables(length, this.invFreqs);
      this.ropeLength = length;
    }
    return this.rope;
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
    this.cfg = rotateStream(this.cfg, this.params, point, q, this.backends);
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

  moeBlocks(): number[] {
    return this.params.blocks.flatMap((b, i) => (b.mlp.kind === 'moe' ? [i] : []));
  }

  expertCount(block: number): number {
    return this.moeSlot(block).experts.length;
  }

  routerWeight(block: number): Tensor<'f32'> {
    return this.moeSlot(block).gate.getWeight();
  }

  removeExperts(experts: readonly (readonly number[])[], rebuild?: RebuildRouter): void {
    this.cfg = removeExperts(this.cfg, this.params.blocks, experts, rebuild);
  }

  private moeSlot(block: number): Extract<BlockParams['mlp'], { kind: 'moe' }> {
    const mlp = this.params.blocks[block]?.mlp;
    if (mlp?.kind !== 'moe')
      throw new InvalidArgumentError('block', block, 'must be a block with a mixture-of-experts MLP');
    return mlp;
  }

  parameterCount(): number {
    return countParameters(this.modules(), this.cfg.tieEmbeddings);
  }

  /** Every module `{ name, kind, module }` (embeddings, norms, linears, blocks, MLP slots, routers, experts). */
  modules(): readonly ModuleEntry[] {
    return moduleTree(this.params);
  }

  checkpoint(): () => void {
    const p = this.params;
    const cfg = this.cfg;
    const arrays = { embedTokens: p.embedTokens, embedPositions: p.embedPositions, finalNorm: p.finalNorm };
    const blocks = p.blocks.map((b) => ({ ...b, mlp: { ...b.mlp } }));
    const layers = linearModules(this.modules()).map((l) => l.checkpoint());
    return () => {
      this.cfg = cfg;
      Object.assign(p, arrays);
      p.blocks.forEach((b, i) => {
        for (const key of Object.keys(b) as (keyof BlockParams)[]) if (!(key in blocks[i]!)) delete b[key];
        Object.assign(b.mlp, blocks[i]!.mlp);
        Object.assign(b, { ...blocks[i], mlp: b.mlp });
      });
      for (const restore of layers) restore();
    };
  }

  /** What runs the products: the reference backend, a wasm backend, a WebGPU backend... */
  get backend(): AnyBackend {
    return this.backends.current;
  }

  set backend(backend: AnyBackend) {
    this.backends.current = backend;
  }

  /**
   * Decode on sparse inputs (activation sparsity: TEAL thresholds, ReLU models, predictors): with
   * `{ minZeroShare }` set, each one-token product whose input has at least that share of exact zeros
   * runs as the backend's column-gather GEMV, reading only the weight columns of nonzero inputs (the
   * backend keeps a column-major copy of each dense weight it gathers from). In gated MLPs, up then
   * computes only the rows where act(gate) is nonzero, and `mlpRows` (a predictor) can choose the
   * rows of gate and up before either runs. Off (undefined) by default: the gather sums in another
   * order, so logits differ from the dense path by rounding.
   */
  get sparseDecode(): SparseDecode | undefined {
    return this.backends.sparseDecode;
  }

  set sparseDecode(value: SparseDecode | undefined) {
    if (value !== undefined && !(value.minZeroShare >= 0 && value.minZeroShare <= 1))
      throw new InvalidArgumentError('sparseDecode.minZeroShare', value.minZeroShare, 'must be in [0, 1]');
    if (value === undefined) delete this.backends.sparseDecode;
    else this.backends.sparseDecode = { ...value };
  }

  /** Every linear layer of the decoder blocks (the LM head and OPT's projections excluded). */
  linearLayers(): readonly Linear[] {
    return this.params.blocks.flatMap((_, i) => this.blockLinearLayers(i));
  }

  blockLinearLayers(index: number): readonly Linear[] {
    return this.blockLinearGroups(index).flat();
  }

  blockLinearGroups(index: number): readonly (readonly Linear[])[] {
    const b = this.block(index);
    return [[b.q, b.k, b.v], [b.o], ...mlpGroups(b.mlp)];
  }

  /** A new cache for `batch` sequences of up to the model's maximum length (see `KvCacheOptions`). */
  createCache(batch: number, options: KvCacheOptions = {}): KvCache {
    const c = this.config;
    if (options.positions === 'shifted' && c.positions !== 'rotary')
      throw new InvalidArgumentError(
        'positions',
        'shifted',
        'needs rotary positions; this model learns absolute ones',
      );
    const backend = this.backend;
    const storage =
      options.storage ??
      (backend.flavour === 'sync' && backend.allocate !== undefined
        ? { allocate: (n: number) => backend.allocate!(n), free: (a: Float32Array) => backend.free?.(a) }
        : undefined);
    return new KvCache(c.numLayers, batch, c.numKvHeads, c.maxPositions, c.headDim, {
      ...options,
      ...(storage === undefined ? {} : { storage }),
    });
  }

  logits(tokenIds: Tensor<'i32'>, options: ForwardOptions = {}): Tensor<'f32'> {
    const [batch, seq] = this.checkTokens(tokenIds);
    const cache = this.createCache(batch);
    try {
      return this.forward(tokenIds, cache, options).reshape([batch, seq, this.vocabSize]);
    } finally {
      cache.dispose();
    }
  }

  /** `logits` on any backend (awaits each operation of an asynchronous one). */
  async logitsAsync(tokenIds: Tensor<'i32'>, options: ForwardOptions = {}): Promise<Tensor<'f32'>> {
    const [batch, seq] = this.checkTokens(tokenIds);
    const out = await this.forwardAsync(tokenIds, this.createCache(batch), options);
    return out.reshape([batch, seq, this.vocabSize]);
  }

  /**
   * Logits [batch * seq, vocab] for tokens that continue the sequences in `cache` (which is
   * extended). Prefill with the prompt, then call with one token per sequence to decode.
   */
  forward(tokenIds: Tensor<'i32'>, cache: KvCache, options: ForwardOptions = {}): Tensor<'f32'> {
    const mark = cache.mark();
    try {
      return runSync(this.backend, this.forwardSteps(tokenIds, cache, options), 'forward');
    } catch (error) {
      // A failure part way (a hook's bad replacement, a policy's bad index) leaves the cache as it was.
      cache.rollback(mark);
      throw error;
    }
  }

  /** `forward` on any backend. */
  async forwardAsync(
    tokenIds: Tensor<'i32'>,
    cache: KvCache,
    options: ForwardOptions = {},
  ): Promise<Tensor<'f32'>> {
    const mark = cache.mark();
    try {
      return await runAsync(this.backend, this.forwardSteps(tokenIds, cache, options));
    } catch (error) {
      cache.rollback(mark);
      throw error;
    }
  }

  private *forwardSteps(
    tokenIds: Tensor<'i32'>,
    cache: KvCache,
    options: ForwardOptions,
  ): Steps<Tensor<'f32'>> {
    const [batch, seq] = this.checkTokens(tokenIds);
    if (batch !== cache.batch) throw new ShapeMismatchError([cache.batch], [batch], 'batch (cache)');
    const longest = cache.reserve(seq);
    const pass = this.pass(batch, seq, cache.length, options);
    const rope = this.ropeUpTo(Math.max(cache.length, longest) + seq);
    let hidden = yield* this.embedSteps(tokenIds, pass);
    for (let i = 0; i < this.numBlocks; i++) {
      const b = this.block(i);
      hidden = yield* attentionHalf(this.config, b, i, hidden, cache, i, rope, pass);
      hidden = yield* mlpHalf(this.config, b, i, hidden, pass);
    }
    cache.length += seq;
    const width = hidden.length / (batch * seq);
    const logits = yield* this.headSteps(new Tensor('f32', [batch, seq, width], hidden));
    return logits.reshape([batch * seq, this.vocabSize]);
  }

  private pass(batch: number, seq: number, position: number, options: ForwardOptions): Pass {
    return {
      hooks: [this.hooks, options.hooks],
      hooked: this.hooks.has() || options.hooks?.has() === true,
      batch,
      seq,
      position,
      ...(options.mask !== undefined
        ? { mask: options.mask }
        : this.cfg.slidingWindow !== undefined
          ? { mask: { kind: 'causal' as const, window: this.cfg.slidingWindow } }
          : {}),
      ...(options.kvPolicy === undefined ? {} : { kvPolicy: options.kvPolicy }),
    };
  }

  embed(tokenIds: Tensor<'i32'>, options: RunOptions = {}): Tensor<'f32'> {
    const [batch, seq] = this.checkTokens(tokenIds);
    const hidden = runSync(
      this.backend,
      this.embedSteps(tokenIds, this.pass(batch, seq, 0, options)),
      'embed',
    );
    return new Tensor('f32', [batch, seq, this.hiddenSize], hidden);
  }

  runBlock(index: number, hidden: Tensor<'f32'>, options: RunOptions = {}): Tensor<'f32'> {
    return this.runMlpHalf(index, this.runAttentionHalf(index, hidden, options), options);
  }

  runAttentionHalf(index: number, hidden: Tensor<'f32'>, options: RunOptions = {}): Tensor<'f32'> {
    const b = this.block(index);
    const input: StreamPoint = index === 0 ? { at: 'embeddings' } : { at: 'mlp', block: index - 1 };
    const [batch, seq] = this.checkHidden(hidden, this.streamWidth(input));
    const cache = new KvCache(1, batch, this.config.numKvHeads, seq, this.config.headDim);
    const pass = this.pass(batch, seq, 0, options);
    const mid = runSync(
      this.backend,
      attentionHalf(this.config, b, index, hidden.data.slice(), cache, 0, this.ropeUpTo(seq), pass),
      'runAttentionHalf',
    );
    return new Tensor('f32', [batch, seq, mid.length / (batch * seq)], mid);
  }

  runMlpHalf(index: number, mid: Tensor<'f32'>, options: RunOptions = {}): Tensor<'f32'> {
    const b = this.block(index);
    const [batch, seq] = this.checkHidden(mid, this.streamWidth({ at: 'attention', block: index }));
    const pass = this.pass(batch, seq, 0, options);
    const out = runSync(this.backend, mlpHalf(this.config, b, index, mid.data.slice(), pass), 'runMlpHalf');
    return new Tensor('f32', [batch, seq, out.length / (batch * seq)], out);
  }

  head(hidden: Tensor<'f32'>): Tensor<'f32'> {
    return runSync(this.backend, this.headSteps(hidden), 'head');
  }

  private *headSteps(hidden: Tensor<'f32'>): Steps<Tensor<'f32'>> {
    const p = this.params;
    const tokens = hidden.size / hidden.shape.at(-1)!;
    let h = hidden.data;
    if (p.finalNorm !== undefined) h = norm(this.config, h, p.finalNorm);
    if (p.projectOut !== undefined) h = yield* p.projectOut.step(h, tokens);
    const logits = yield* p.lmHead.step(h, tokens);
    return new Tensor('f32', [...hidden.shape.slice(0, -1), this.vocabSize], logits);
  }

  /**
   * Run `batches` (each [batch, seq] token ids) through the model, handing `hook` the inputs of every
   * linear layer whose name passes `filter` (a `linear.input` hook for the duration of the pass).
   */
  async calibrate(
    batches: Iterable<Tensor<'i32'>> | AsyncIterable<Tensor<'i32'>>,
    hook: CalibrationHook,
    options: ProgressOptions & { filter?: (name: string) => boolean } = {},
  ): Promise<void> {
    const hooks = calibrationHooks(hook, options.filter);
    let n = 0;
    for await (const batch of batches) {
      const [b] = this.checkTokens(batch);
      await this.forwardAsync(batch, this.createCache(b), { hooks });
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

  private *embedSteps(tokenIds: Tensor<'i32'>, pass: Pass): Steps<Float32Array> {
    const c = this.config;
    const p = this.params;
    const [batch, seq] = tokenIds.shape as [number, number];
    const width = p.embedTokens.length / c.vocabSize;
    let h: Float32Array = new Float32Array(batch * seq * width);
    for (let t = 0; t < batch * seq; t++) {
      const id = tokenIds.data[t]!;
      h.set(p.embedTokens.subarray(id * width, (id + 1) * width), t * width);
    }
    if (p.projectIn !== undefined) h = yield* p.projectIn.step(h, batch * seq);
    if (p.embedPositions !== undefined) {
      const hidden = h.length / (batch * seq);
      for (let t = 0; t < batch * seq; t++) {
        const row = (pass.position + (t % seq) + c.positionOffset) * hidden;
        for (let i = 0; i < hidden; i++) h[t * hidden + i]! += p.embedPositions[row + i]!;
      }
    }
    return hookAt(pass, 'stream', -1, h, { point: { at: 'embeddings' } });
  }
}
