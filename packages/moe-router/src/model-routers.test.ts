import { Rng, type Router, Tensor } from '@sparsekit/core';
import { describe, expect, it } from 'vitest';
import { loadBalancingLoss, routerZLoss } from './losses.js';
import { loadMetrics } from './metrics.js';
import {
  concatRouteResults,
  type MoeModelLike,
  moeLayers,
  recordModelRoutings,
  routeResultOf,
  swapRouters,
  withRouters,
} from './model-routers.js';
import { softmaxTopK } from './top-k.js';

const E = 4;
const plainTop1: Router = {
  numExperts: E,
  route: ({ logits }) => {
    const tokens = logits.size / E;
    const experts = new Int32Array(tokens);
    for (let t = 0; t < tokens; t++) {
      let best = 0;
      for (let e = 1; e < E; e++) if (logits.data[t * E + e]! > logits.data[t * E + best]!) best = e;
      experts[t] = best;
    }
    return { k: 1, experts, weights: new Float32Array(tokens).fill(1) };
  },
};

function fakeModel(): MoeModelLike & { params: { blocks: { mlp: { kind: string; router?: Router } }[] } } {
  return {
    params: {
      blocks: [
        { mlp: { kind: 'gated' } },
        {
          mlp: { kind: 'moe', router: plainTop1, experts: [0, 1, 2, 3] } as { kind: string; router: Router },
        },
        {
          mlp: { kind: 'moe', router: plainTop1, experts: [0, 1, 2, 3] } as { kind: string; router: Router },
        },
      ],
    },
  };
}

const rng = new Rng(3);
const input = (tokens: number, block: number) => ({
  hidden: new Tensor('f32', [tokens, 2], new Float32Array(tokens * 2)),
  logits: new Tensor('f32', [tokens, E], rng.normalArray(tokens * E)),
  block,
});

describe('a model’s routers', () => {
  it('lists the MoE layers, swaps routers and restores them', async () => {
    const model = fakeModel();
    expect(moeLayers(model).map((l) => [l.block, l.numExperts])).toEqual([
      [1, 4],
      [2, 4],
    ]);
    const top2 = softmaxTopK({ numExperts: E, k: 2 });
    const restore = swapRouters(model, () => top2);
    expect(model.params.blocks[1]!.mlp.router).toBe(top2);
    restore();
    expect(model.params.blocks[2]!.mlp.router).toBe(plainTop1);
    const seen = await withRouters(
      model,
      () => top2,
      () => model.params.blocks[2]!.mlp.router,
    );
    expect(seen).toBe(top2);
    expect(model.params.blocks[2]!.mlp.router).toBe(plainTop1);
    expect(() => swapRouters(model, () => softmaxTopK({ numExperts: 3, k: 1 }))).toThrow(/4 experts/);
    expect(model.params.blocks[1]!.mlp.router).toBe(plainTop1);
  });

  it('records every routing per layer, completing plain ones with the softmax of the logits', () => {
    const model = fakeModel();
    const recording = recordModelRoutings(model);
    const slot = model.params.blocks[1]!.mlp.router!;
    const a = input(5, 1);
    const routed = slot.route(a);
    expect(routed.experts).toEqual(plainTop1.route(a).experts);
    slot.route(input(3, 1));
    expect(recording.layers.map((l) => l.results.length)).toEqual([2, 0]);
    const joined = concatRouteResults(recording.layers[0]!.results, E);
    expect(joined.tokens).toBe(8);
    expect(loadMetrics(joined, E).kept).toBe(8);
    const sums = Array.from({ length: 8 }, (_, t) =>
      joined.probs.subarray(t * E, (t + 1) * E).reduce((s, p) => s + p, 0),
    );
    expect(sums.every((s) => Math.abs(s - 1) < 1e-12)).toBe(true);
    expect(loadBalancingLoss(joined, { alpha: 1 })).toBeGreaterThan(0);
    expect(routerZLoss(joined)).toBeGreaterThan(0);
    recording.restore();
    expect(model.params.blocks[1]!.mlp.router).toBe(plainTop1);
  });

  it('keeps a RouteResult as the router returned it (drops and capacity included)', () => {
    const router = softmaxTopK({ numExperts: E, k: 2, capacity: { factor: 0.5 } });
    const x = input(16, 0);
    const r = router.route(x);
    expect(routeResultOf(r, x, E)).toBe(r);
    const joined = concatRouteResults([r, router.route(input(16, 0))], E);
    expect(joined.capacity).toBe(r.capacity);
    expect(joined.dropped).toBeGreaterThan(0);
  });
});
