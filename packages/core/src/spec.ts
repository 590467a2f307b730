import type { Hooks } from './hooks.js';
import type { ProgressOptions } from './progress.js';
import type { Tensor } from './tensor.js';

/**
 * The minimal interfaces the algorithm packages code against. `@sparsekit/models` implements them;
 * pruners and the eval harness depend only on these, never on a concrete model.
 */

/** A causal language model: logits for token ids. */
export interface CausalLM {
  /** Size of the vocabulary (the last dimension of the logits). */
  readonly vocabSize: number;
  /** Longest sequence the model accepts in one call. */
  readonly maxSequenceLength: number;
  /**
   * Logits for a batch of equal-length token sequences: input [batch, seq] (i32), output
   * [batch, seq, vocabSize] (f32), where position t holds the prediction for token t+1.
   */
  logits(tokenIds: Tensor<'i32'>): Tensor<'f32'> | Promise<Tensor<'f32'>>;
}

/** One linear layer `y = x W^T + b`, W of shape [outFeatures, inFeatures]. */
export interface LinearLayer {
  /** A stable name, e.g. 'layers.3.mlp.down_proj'. */
  readonly name: string;
  readonly inFeatures: number;
  readonly outFeatures: number;
  /** The weight as a dense f32 tensor [outFeatures, inFeatures] (a copy or a view; do not mutate). */
  getWeight(): Tensor<'f32'>;
  /** Replace the weight; the shape must be [outFeatures, inFeatures]. */
  setWeight(weight: Tensor<'f32'>): void;
}

/** A model whose linear layers can be listed and edited. */
export interface HasLinearLayers {
  linearLayers(): readonly LinearLayer[];
}

/**
 * Receives the inputs of linear layers during a calibration pass: `inputs` is [tokens, inFeatures]
 * for one batch. Called once per batch and layer, so memory stays bounded by one batch. Layers that
 * read one tensor (q, k, v; gate, up) receive the same `inputs`. (A use of the `linear.input` hook
 * site: see `calibrationHooks`.)
 */
export type CalibrationHook = (layer: LinearLayer, inputs: Tensor<'f32'>) => void;

/**
 * Most calibration windows one run may ask for (the references use 128; memory grows with each), for
 * recipes and the window draw alike.
 */
export const MAX_CALIBRATION_SAMPLES = 65_536;

/** A model that can run calibration data and report each linear layer's inputs to a hook. */
export interface Calibratable {
  /**
   * Run `batches` (each [batch, seq] token ids) through the model, calling `hook` with the inputs of
   * every linear layer whose name passes `filter` (all layers when omitted).
   */
  calibrate(
    batches: Iterable<Tensor<'i32'>> | AsyncIterable<Tensor<'i32'>>,
    hook: CalibrationHook,
    options?: ProgressOptions & { filter?: (name: string) => boolean },
  ): Promise<void>;
}

/** Text <-> token ids. `@sparsekit/models` wraps Hugging Face tokenizer.json files in it. */
export interface Tokenizer {
  readonly vocabSize: number;
  /** Token ids of `text`, without special tokens added. */
  encode(text: string): number[];
  decode(ids: readonly number[]): string;
  /** Beginning-of-sequence / end-of-text ids, when the tokenizer has them. */
  readonly bosTokenId?: number;
  readonly eosTokenId?: number;
}

/** Options of a call that runs (part of) a model: hooks that apply to this call only. */
export interface RunOptions {
  hooks?: Hooks;
}

/** A cache that can be rolled back to a mark taken earlier (models' `KvCache` is one). */
export interface RollbackCache<Mark = unknown> {
  mark(): Mark;
  rollback(mark: Mark): void;
}

/**
 * A causal LM that decodes incrementally: `forward` runs tokens that continue the sequences held in
 * `cache` (extending it) and returns their logits [batch * seq, vocab]. Models' `TransformerLM` is one.
 */
export interface DecodingLM<Mark = unknown> extends CausalLM {
  /**
   * `positions: 'shifted'`: StreamingLLM's positions within the cache (rotary models only);
   * `pageSize`: entries per page of a paged cache (what Quest scores).
   */
  createCache(
    batch: number,
    options?: { positions?: 'original' | 'shifted'; pageSize?: number },
  ): RollbackCache<Mark>;
  forward(tokenIds: Tensor<'i32'>, cache: RollbackCache<Mark>, options?: DecodeOptions): Tensor<'f32'>;
}

/** Options of a decoding call: hooks, and the KV policy its one-token steps run under. */
export interface DecodeOptions extends RunOptions {
  kvPolicy?: KvPolicy;
}

/**
 * A causal LM that runs one transformer block at a time, as sequential pruning needs (SparseGPT,
 * Wanda with `--use_variant` off): block i runs on the outputs of blocks 0..i-1 as they are now,
 * already pruned. Hidden states are [batch, seq, hidden] f32.
 */
export interface BlockwiseLM extends CausalLM, HasLinearLayers {
  readonly numBlocks: number;
  readonly hiddenSize: number;
  /** Hidden states entering block 0 (embeddings, plus learned positions where the model has them). */
  embed(tokenIds: Tensor<'i32'>): Tensor<'f32'>;
  /** Run block `index` on `hidden`, with this call's hooks (see `Hooks`) if given. */
  runBlock(index: number, hidden: Tensor<'f32'>, options?: RunOptions): Tensor<'f32'>;
  /** The block's linear layers, in execution order. */
  blockLinearLayers(index: number): readonly LinearLayer[];
  /**
   * The block's linear layers grouped by the tensor they read (q, k, v together; gate and up
   * together), in execution order: layers of one group see identical inputs.
   */
  blockLinearGroups(index: number): readonly (readonly LinearLayer[])[];
  /** Logits from the hidden states leaving the last block (final norm and the LM head). */
  head(hidden: Tensor<'f32'>): Tensor<'f32'>;
}

/**
 * A point of the residual stream of a pre-norm transformer: after the embeddings (the input of block
 * 0), or inside block `block` after its attention (the MLP norm's input) or after its MLP (the input
 * of the next block, or of the final norm).
 */
export type StreamPoint =
  | { readonly at: 'embeddings' }
  | { readonly at: 'attention' | 'mlp'; readonly block: number };

/**
 * A pre-norm transformer whose residual stream can be rotated and sliced (SliceGPT). After
 * `foldNorms`, every norm is a weightless RMSNorm (dividing by the original width even when the
 * stream is narrower), so an orthogonal change of basis of the stream leaves the outputs unchanged.
 */
export interface SliceableLM extends BlockwiseLM {
  /**
   * Fold each norm's scale (and, for LayerNorm, its centering and shift) into the layers that read
   * its output, leaving weightless RMSNorms. Outputs are unchanged up to rounding. Idempotent.
   */
  foldNorms(): void;
  /** Width of the residual stream at `point` (the original hidden size until it is sliced). */
  streamWidth(point: StreamPoint): number;
  /**
   * The residual stream of block `index` after its attention half (the MLP norm's input), for block
   * inputs `hidden` [batch, seq, width]; `runMlpHalf` continues from there to the block's output.
   */
  runAttentionHalf(index: number, hidden: Tensor<'f32'>, options?: RunOptions): Tensor<'f32'>;
  runMlpHalf(index: number, mid: Tensor<'f32'>, options?: RunOptions): Tensor<'f32'>;
  /**
   * Re-express the stream at `point` as x' = x Q for `q` [width, kept] with orthonormal columns:
   * the layers writing to that point are multiplied by Q^T on their outputs, those reading it by Q
   * on their inputs. With kept < width the stream is sliced to its first `kept` coordinates.
   * Requires `foldNorms()` first.
   */
  rotateStream(point: StreamPoint, q: Tensor<'f32'>): void;
  /** Every parameter of the model (shortcut matrices included), to report what slicing saved. */
  parameterCount(): number;
  /** Capture the parameters; the returned function puts them back (for all-or-nothing edits). */
  checkpoint(): () => void;
}

/**
 * A blockwise model whose MLP channels and attention heads can be deleted, leaving a smaller dense
 * model (the accelerate path of structured pruning). Every block must keep the same shape.
 */
export interface NarrowableLM extends BlockwiseLM {
  /** Per block: MLP channels, attention (query) heads, key/value heads, and the width of a head. */
  readonly blockShape: { mlpChannels: number; heads: number; kvHeads: number; headDim: number };
  /**
   * Delete `channels[b]` from the MLP of block b (rows of the up/gate projections, columns of the
   * down projection). Every block must lose the same number.
   */
  removeMlpChannels(channels: readonly (readonly number[])[]): void;
  /**
   * Delete query heads `heads[b]` of block b (rows of q, columns of o); a key/value head goes with
   * the last query head of its group. Every block must end with the same number of key/value heads
   * and every remaining group with the same number of query heads.
   */
  removeHeads(heads: readonly (readonly number[])[]): void;
}

/**
 * Which experts each token goes to: `k` slots per token, slot j of token t at index t * k + j.
 * Expert -1 marks a dropped slot (over capacity): that slot adds nothing, so a token with every slot
 * dropped passes through the block's residual unchanged.
 */
export interface Routing {
  readonly k: number;
  /** [tokens * k] expert ids, or -1. */
  readonly experts: Int32Array;
  /** [tokens * k] combine weights (the expert outputs are summed with these). */
  readonly weights: Float32Array;
}

/** What a router sees: the MLP input and the gate projection's logits for it. */
export interface RouterInput {
  /** [tokens, width] hidden states entering the MLP (after its norm). */
  readonly hidden: Tensor<'f32'>;
  /** [tokens, numExperts] the gate layer's output (router logits), computed on the model's backend. */
  readonly logits: Tensor<'f32'>;
  readonly block: number;
}

/**
 * The gate of a mixture-of-experts MLP slot: hidden states (and router logits) to per-token expert
 * ids and weights. Capacity, dropping and balancing belong to the implementation (moe-router); the
 * model dispatches every kept slot and combines the weighted outputs.
 */
export interface Router {
  readonly numExperts: number;
  route(input: RouterInput): Routing;
  /**
   * The same router for a layer that keeps only experts `kept` (old ids, ascending; new id i is
   * `kept[i]`), as expert pruning needs: per-expert parameters are sliced, and k is clamped to the
   * experts left. Optional: a router without it cannot lose experts unless the caller rebuilds it.
   */
  withExperts?(kept: readonly number[]): Router;
}

/**
 * Builds the router of a layer that keeps experts `kept` (old ids, ascending) from its current one;
 * `ExpertPrunableLM.removeExperts` uses `router.withExperts` when no rebuild is given.
 */
export type RebuildRouter = (router: Router, kept: readonly number[], block: number) => Router;

/**
 * A blockwise model whose mixture-of-experts layers can lose whole experts (the structured stage of
 * STUN-style expert pruning). A removed expert's gate row goes with it, and the layer's router is
 * rebuilt for the experts left.
 */
export interface ExpertPrunableLM extends BlockwiseLM {
  /** The blocks whose MLP slot is a mixture of experts, ascending. */
  moeBlocks(): number[];
  /** Routed experts of block `block` (a shared expert is not counted; it cannot be removed). */
  expertCount(block: number): number;
  /** The router gate's weight of block `block`: [experts, hidden], one row per expert. */
  routerWeight(block: number): Tensor<'f32'>;
  /**
   * Delete experts `experts[b]` of block b (one list per block; blocks without a mixture take an
   * empty list): their gate rows and their layers. Every mixture block must end with the same number
   * of experts (at least one), so the config still describes the model. Routers are rebuilt by
   * `rebuild` when given, else by `router.withExperts`; a router with neither is an error. With
   * nothing removed, nothing changes (routers are kept as they are).
   */
  removeExperts(experts: readonly (readonly number[])[], rebuild?: RebuildRouter): void;
}

/** Kinds of module in a model's module tree. */
export type ModuleKind =
  | 'embedding'
  | 'norm'
  | 'linear'
  | 'block'
  | 'attention'
  | 'mlp'
  | 'router'
  | 'expert';

/** One entry of `modules()`: a Hugging Face-style name, its kind, and the object itself. */
export interface ModuleEntry {
  readonly name: string;
  readonly kind: ModuleKind;
  readonly module: unknown;
}

/** A model whose modules can be listed (every parameter-holding piece, under stable names). */
export interface HasModules {
  modules(): readonly ModuleEntry[];
}

/**
 * One lane of a paged KV cache: the cached keys and values of one key/value head of one sequence
 * in one layer, in arrival order. Entries are grouped in pages of `pageSize` consecutive entries
 * (page p holds entries [p * pageSize, (p + 1) * pageSize)); eviction removes entries and moves the
 * later ones down, so pages are renumbered after it. Views are valid until the cache next changes.
 */
export interface KvLane {
  readonly layer: number;
  readonly sequence: number;
  readonly kvHead: number;
  readonly headDim: number;
  readonly pageSize: number;
  /** Entries held. */
  readonly length: number;
  /** [length, headDim] keys (after rotary positions when the cache keeps original positions). */
  readonly keys: Float32Array;
  readonly values: Float32Array;
  /** [length] the original position of each entry. */
  readonly positions: Int32Array;
}

/**
 * What a KV policy sees of a call's queries, for one lane: [heads, seq, headDim] of the query heads
 * sharing its key/value head (seq is 1 at decode; `evict` is also called after a prefill).
 */
export interface KvQuery {
  readonly q: Float32Array;
  readonly heads: number;
  readonly seq: number;
  /** The original position of the call's first new token. */
  readonly position: number;
  readonly block: number;
}

/**
 * Decode-time control of the KV cache (Quest, Double Sparsity, H2O, StreamingLLM, SnapKV):
 * `select` picks the entries a decode step's queries read (sorted entry indices, or undefined for
 * all; pages are `pageSize` entries); `evict` names entries to drop after the step (their memory is
 * compacted away at once). Both are called per lane; a policy with neither is exact attention.
 */
export interface KvPolicy {
  select?(lane: KvLane, query: KvQuery): Int32Array | undefined;
  evict?(lane: KvLane, query: KvQuery): Int32Array | undefined;
}
