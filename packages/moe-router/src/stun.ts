// STUN's structured stage (Lee et al., "STUN: Structured-Then-Unstructured Pruning for Scalable MoE
// Pruning", arXiv 2409.06211): expert pruning from O(1) forward passes. Experts that behave alike
// are redundant; per MoE layer, a behaviour similarity between experts is built from the router's
// weights and from how the calibration tokens were routed (co-activation), and the experts most
// redundant with a kept one are removed greedily. The unstructured stage (pruning the weights of
// the experts left) is any of the pruners' methods, run afterwards on the smaller model.
import {
  type ExpertPrunableLM,
  type HasLinearLayers,
  Hooks,
  InvalidArgumentError,
  type ProgressOptions,
  type RebuildRouter,
  reportProgress,
  type Tensor,
} from '@sparsekit/core';
import { finiteIn, positiveInteger } from './validate.js';

/** `onProgress` hears one 'route' event per calibration batch (`signal` aborts between batches). */
export interface StunOptions extends ProgressOptions {
  /** Experts each MoE layer keeps (give this or `ratio`). */
  targetExperts?: number;
  /** Share of each layer's experts to remove, in [0, 1) (rounded to a count; the paper's expert sparsity). */
  ratio?: number;
  /**
   * Weight of the co-activation term: similarity = cos(gate rows) + lambda * co-activation (the
   * paper's lambda combining the two cues). Default 1; 0 uses the router weights alone.
   */
  lambda?: number;
}

/** One removal of the greedy: `expert` went as the most redundant with `keptWith` (still kept then). */
export interface StunStep {
  expert: number;
  keptWith: number;
  /** The pair's combined similarity. */
  similarity: number;
}

/** The plan of one MoE layer. Matrices are [numExperts, numExperts], row-major, symmetric. */
export interface StunLayerPlan {
  block: number;
  numExperts: number;
  /** Removed experts, in removal order. */
  removed: number[];
  /** Kept experts, ascending (new id i is kept[i]). */
  kept: number[];
  steps: StunStep[];
  /** Cosine similarity of the gate rows (router-weight similarity). */
  routerSimilarity: Float64Array;
  /**
   * Co-activation: tokens routed to both i and j, over sqrt(tokens routed to i * tokens routed to j)
   * (0 when either expert never ran); the diagonal is 1 for experts that ran.
   */
  coactivation: Float64Array;
  /** routerSimilarity + lambda * coactivation. */
  similarity: Float64Array;
  /** Calibration tokens routed to each expert. */
  frequency: Float64Array;
}

export interface StunPlan {
  lambda: number;
  /** Calibration tokens seen (every layer sees them all). */
  tokens: number;
  layers: StunLayerPlan[];
}

function removeCount(options: StunOptions, experts: number): number {
  const { targetExperts, ratio } = options;
  if ((targetExperts === undefined) === (ratio === undefined))
    throw new InvalidArgumentError('STUN options', options, 'give exactly one of targetExperts and ratio');
  if (targetExperts !== undefined) {
    positiveInteger('targetExperts', targetExperts);
    if (targetExperts > experts)
      throw new InvalidArgumentError(
        'targetExperts',
        targetExperts,
        `must be at most the experts (${experts})`,
      );
    return experts - targetExperts;
  }
  finiteIn('ratio', ratio!, 0, 1);
  const n = Math.round(ratio! * experts);
  if (n >= experts) throw new InvalidArgumentError('ratio', ratio, 'must leave at least one expert');
  return n;
}

function cosineRows(w: Tensor<'f32'>): Float64Array {
  const [E, H] = [w.shape[0]!, w.shape[1]!];
  const norms = new Float64Array(E);
  const out = new Float64Array(E * E);
  for (let i = 0; i < E; i++) {
    let s = 0;
    for (let d = 0; d < H; d++) s += w.data[i * H + d]! ** 2;
    norms[i] = Math.sqrt(s);
  }
  for (let i = 0; i < E; i++)
    for (let j = i; j < E; j++) {
      let s = 0;
      for (let d = 0; d < H; d++) s += w.data[i * H + d]! * w.data[j * H + d]!;
      const n = norms[i]! * norms[j]!;
      const c = n > 0 ? s / n : 0;
      out[i * E + j] = c;
      out[j * E + i] = c;
    }
  return out;
}

/**
 * Greedy expert removal over the similarity matrix: while more must go, take the most similar pair
 * of kept experts and remove the one fewer tokens chose (ties: the higher id), so it joins the
 * other's cluster. Agglomerative clustering with one representative per cluster, reduced to pairs.
 */
function greedy(similarity: Float64Array, frequency: Float64Array, E: number, count: number): StunStep[] {
  const alive = new Array<boolean>(E).fill(true);
  const steps: StunStep[] = [];
  for (let step = 0; step < count; step++) {
    let best: [number, number, number] | undefined;
    for (let i = 0; i < E; i++) {
      if (!alive[i]) continue;
      for (let j = i + 1; j < E; j++) {
        if (!alive[j]) continue;
        const s = similarity[i * E + j]!;
        if (best === undefined || s > best[2]) best = [i, j, s];
      }
    }
    const [i, j, s] = best!;
    const [gone, stay] = frequency[j]! <= frequency[i]! ? [j, i] : [i, j];
    alive[gone] = false;
    steps.push({ expert: gone, keptWith: stay, similarity: s });
  }
  return steps;
}

/**
 * STUN's expert-pruning plan: one forward pass over `calibrationBatches` (each [batch, seq] token
 * ids) records which experts each token was routed to (the `mlp.hidden` hook site of each expert),
 * then, per MoE layer, combines co-activation with the gate rows' cosine similarity and removes the
 * most redundant experts greedily, the same count in every layer. The model is not changed (see
 * `applyStun`).
 */
export async function stunPlan(
  model: ExpertPrunableLM,
  calibrationBatches: Iterable<Tensor<'i32'>> | AsyncIterable<Tensor<'i32'>>,
  options: StunOptions,
): Promise<StunPlan> {
  const lambda = options.lambda ?? 1;
  if (!Number.isFinite(lambda) || lambda < 0)
    throw new InvalidArgumentError('lambda', lambda, 'must be a finite number >= 0');
  const blocks = model.moeBlocks();
  const E = blocks.map((b) => model.expertCount(b));
  const counts = E.map((e) => removeCount(options, e));
  const co = E.map((e) => new Float64Array(e * e));
  const frequency = E.map((e) => new Float64Array(e));
  const layerOf = new Map(blocks.map((b, i) => [b, i]));
  let tokens = 0;
  let batches = 0;
  const total = Array.isArray(calibrationBatches) ? calibrationBatches.length : undefined;
  for await (const ids of calibrationBatches) {
    options.signal?.throwIfAborted();
    batches++;
    const T = ids.size;
    tokens += T;
    let hidden = model.embed(ids);
    for (let b = 0; b < model.numBlocks; b++) {
      const layer = layerOf.get(b);
      if (layer === undefined) {
        hidden = model.runBlock(b, hidden);
        continue;
      }
      const e = E[layer]!;
      const chosen = new Uint8Array(T * e);
      const hooks = new Hooks();
      hooks.add('mlp.hidden', (_x, c) => {
        // A shared expert reports id numExperts: it is not routed.
        if (c.expert === undefined || c.expert.id >= e) return;
        for (const t of c.expert.tokens) chosen[t * e + c.expert.id] = 1;
      });
      hidden = model.runBlock(b, hidden, { hooks });
      const m = co[layer]!;
      const f = frequency[layer]!;
      const row: number[] = [];
      for (let t = 0; t < T; t++) {
        row.length = 0;
        for (let x = 0; x < e; x++) if (chosen[t * e + x]) row.push(x);
        for (const x of row) {
          f[x]!++;
          for (const y of row) m[x * e + y]!++;
        }
      }
    }
    reportProgress(options, {
      stage: 'route',
      current: batches,
      ...(total === undefined ? {} : { total }),
      unit: 'batch',
    });
  }
  if (batches === 0) throw new InvalidArgumentError('calibration batches', 0, 'need at least one batch');
  const layers = blocks.map((block, layer): StunLayerPlan => {
    const e = E[layer]!;
    const f = frequency[layer]!;
    const routerSimilarity = cosineRows(model.routerWeight(block));
    const coactivation = new Float64Array(e * e);
    const similarity = new Float64Array(e * e);
    for (let i = 0; i < e; i++)
      for (let j = 0; j < e; j++) {
        const n = Math.sqrt(f[i]! * f[j]!);
        coactivation[i * e + j] = n > 0 ? co[layer]![i * e + j]! / n : 0;
        similarity[i * e + j] = routerSimilarity[i * e + j]! + lambda * coactivation[i * e + j]!;
      }
    const steps = greedy(similarity, f, e, counts[layer]!);
    const removed = steps.map((s) => s.expert);
    const gone = new Set(removed);
    const kept = Array.from({ length: e }, (_, i) => i).filter((i) => !gone.has(i));
    return {
      block,
      numExperts: e,
      removed,
      kept,
      steps,
      routerSimilarity,
      coactivation,
      similarity,
      frequency: f,
    };
  });
  return { lambda, tokens, layers };
}

/**
 * Remove the experts `plan` chose (`model.removeExperts`; routers are rebuilt by `rebuild`, else by
 * their `withExperts`). The plan must come from this model as it is now.
 */
export function applyStun(model: ExpertPrunableLM, plan: StunPlan, rebuild?: RebuildRouter): void {
  const lists: number[][] = Array.from({ length: model.numBlocks }, () => []);
  for (const layer of plan.layers) {
    if (layer.block < 0 || layer.block >= model.numBlocks || !model.moeBlocks().includes(layer.block))
      throw new InvalidArgumentError('STUN plan block', layer.block, 'is not a mixture-of-experts block');
    if (model.expertCount(layer.block) !== layer.numExperts)
      throw new InvalidArgumentError(
        `STUN plan of block ${layer.block}`,
        layer.numExperts,
        `was made for ${layer.numExperts} experts; the block has ${model.expertCount(layer.block)}`,
      );
    lists[layer.block] = [...layer.removed];
  }
  model.removeExperts(lists, rebuild);
}

/**
 * The layers of routed experts, by name (`layers.B.mlp.experts.E.*`, the module tree's names): what
 * STUN's unstructured stage prunes (router gates, shared experts and attention excluded). A recipe
 * regex as well (`layers.include`).
 */
export const EXPERT_LAYERS = String.raw`\.mlp\.experts\.\d+\.`;

/**
 * The routed experts' weights, all and those not zero (counted from the weights): STUN's total
 * sparsity is 1 - nonzero after / weights before.
 */
export function expertWeightCounts(model: HasLinearLayers): { weights: number; nonzero: number } {
  const pattern = new RegExp(EXPERT_LAYERS);
  let weights = 0;
  let nonzero = 0;
  for (const layer of model.linearLayers()) {
    if (!pattern.test(layer.name)) continue;
    const w = layer.getWeight().data;
    weights += w.length;
    for (let i = 0; i < w.length; i++) if (w[i] !== 0) nonzero++;
  }
  return { weights, nonzero };
}
