// The routers of a model's mixture-of-experts slots, reached through core's `Router`: list them, swap
// them for others (restorable), and record every routing they return with the logits it was made
// from, so metrics and losses can be read after a forward pass. Coded against a structural view of a
// model (blocks whose MLP slot may be `{ kind: 'moe', router, experts }`), never against `models`.
import { InvalidArgumentError, type Router, type RouterInput, type Routing } from '@sparsekit/core';
import type { RouteResult } from './route-result.js';
import { softmaxRows } from './softmax.js';

/** A mixture-of-experts MLP slot as a model holds it (models' `MoeMlp` fits). */
export interface MoeSlotLike {
  readonly kind: 'moe';
  router: Router;
  readonly experts: readonly unknown[];
}

/** Anything with decoder blocks whose MLP slot may be a mixture of experts (models' `TransformerLM` fits). */
export interface MoeModelLike {
  readonly params: { readonly blocks: readonly { readonly mlp: { readonly kind: string } }[] };
}

/** One MoE layer of a model: its block, expert count and the router it runs now. */
export interface MoeLayer {
  block: number;
  numExperts: number;
  router: Router;
}

function slotOf(mlp: { readonly kind: string }): MoeSlotLike | undefined {
  return mlp.kind === 'moe' ? (mlp as unknown as MoeSlotLike) : undefined;
}

/** The model's MoE layers in block order (empty for a dense model). */
export function moeLayers(model: MoeModelLike): MoeLayer[] {
  const layers: MoeLayer[] = [];
  model.params.blocks.forEach((b, block) => {
    const slot = slotOf(b.mlp);
    if (slot !== undefined) layers.push({ block, numExperts: slot.experts.length, router: slot.router });
  });
  return layers;
}

/**
 * Replaces the router of every MoE layer with `factory(layer)` (the layer's gate and experts stay);
 * returns a function that puts the original routers back. A factory whose router has another
 * expert count than the layer is refused before anything is swapped.
 */
export function swapRouters(model: MoeModelLike, factory: (layer: MoeLayer) => Router): () => void {
  const layers = moeLayers(model);
  const routers = layers.map((layer) => {
    const router = factory(layer);
    if (router.numExperts !== layer.numExperts)
      throw new InvalidArgumentError(
        'router numExperts',
        router.numExperts,
        `block ${layer.block} has ${layer.numExperts} experts; build the router for that many`,
      );
    return router;
  });
  const blocks = model.params.blocks;
  layers.forEach((layer, i) => {
    slotOf(blocks[layer.block]!.mlp)!.router = routers[i]!;
  });
  return () => {
    for (const layer of layers) slotOf(blocks[layer.block]!.mlp)!.router = layer.router;
  };
}

/** Runs `fn` with every MoE layer's router replaced by `factory(layer)`, and restores them after. */
export async function withRouters<T>(
  model: MoeModelLike,
  factory: (layer: MoeLayer) => Router,
  fn: () => T | Promise<T>,
): Promise<T> {
  const restore = swapRouters(model, factory);
  try {
    return await fn();
  } finally {
    restore();
  }
}

/** A recorded routing as a `RouteResult`: this package's routers' own, or a plain one completed. */
export function routeResultOf(routing: Routing, input: RouterInput, numExperts: number): RouteResult {
  if ('probs' in routing && 'chosen' in routing) return routing as RouteResult;
  const tokens = input.logits.size / numExperts;
  if (!Number.isInteger(tokens))
    throw new InvalidArgumentError('router logits', input.logits.size, `must be a multiple of ${numExperts}`);
  // A plain router (a checkpoint's own top-k): its probabilities are the softmax of the gate logits,
  // and nothing was dropped (a -1 slot counts as chosen nothing).
  return {
    k: routing.k,
    experts: routing.experts,
    weights: routing.weights,
    numExperts,
    tokens,
    probs: softmaxRows(input.logits.data, tokens, numExperts),
    logits: Float64Array.from(input.logits.data),
    chosen: routing.experts.slice(),
    capacity: undefined,
    dropped: 0,
    layout: 'ranked',
  };
}

/** The routings of one layer, in call order. */
export interface LayerRoutings {
  block: number;
  numExperts: number;
  results: RouteResult[];
}

export interface ModelRecording {
  /** One entry per MoE layer, in block order. */
  readonly layers: readonly LayerRoutings[];
  /** Forget what was recorded (keep recording). */
  clear(): void;
  /** Put the routers that ran before back (unwrapped). */
  restore(): void;
}

/**
 * Wraps every MoE layer's router so that each routing it returns is kept (as a `RouteResult`, with
 * the probabilities of the logits it saw) per layer; the model routes exactly as before.
 */
export function recordModelRoutings(model: MoeModelLike): ModelRecording {
  const layers: LayerRoutings[] = moeLayers(model).map((l) => ({
    block: l.block,
    numExperts: l.numExperts,
    results: [],
  }));
  const restore = swapRouters(model, (layer) => {
    const into = layers.find((l) => l.block === layer.block)!;
    return {
      numExperts: layer.numExperts,
      route(input: RouterInput): Routing {
        const routing = layer.router.route(input);
        into.results.push(routeResultOf(routing, input, layer.numExperts));
        return routing;
      },
    };
  });
  return {
    layers,
    clear: () => {
      for (const l of layers) l.results.length = 0;
    },
    restore,
  };
}

/**
 * Routings of one layer joined into one over all their tokens (metrics and losses of the whole
 * stream). Capacity is the largest of theirs (undefined if any was dropless).
 */
export function concatRouteResults(results: readonly RouteResult[], numExperts: number): RouteResult {
  const k = results[0]?.k ?? 1;
  for (const r of results)
    if (r.k !== k || r.numExperts !== numExperts || r.layout !== (results[0]?.layout ?? r.layout))
      throw new InvalidArgumentError('routings', r.k, 'must share k, expert count and layout to be joined');
  const tokens = results.reduce((s, r) => s + r.tokens, 0);
  const join = <A extends Int32Array | Float32Array | Float64Array>(
    make: new (n: number) => A,
    pick: (r: RouteResult) => A,
  ): A => {
    const out = new make(results.reduce((s, r) => s + pick(r).length, 0));
    let at = 0;
    for (const r of results) {
      out.set(pick(r) as never, at);
      at += pick(r).length;
    }
    return out;
  };
  const dropless = results.some((r) => r.capacity === undefined);
  return {
    k,
    numExperts,
    tokens,
    experts: join(Int32Array, (r) => r.experts),
    weights: join(Float32Array, (r) => r.weights),
    chosen: join(Int32Array, (r) => r.chosen),
    probs: join(Float64Array, (r) => r.probs),
    logits: join(Float64Array, (r) => r.logits),
    capacity: dropless ? undefined : Math.max(0, ...results.map((r) => r.capacity ?? 0)),
    dropped: results.reduce((s, r) => s + r.dropped, 0),
    layout: results[0]?.layout ?? 'ranked',
  };
}
