// The routers inside a real model: tiny-lm (Llama-style, SwiGLU MLPs) with its MLPs replaced by
// mixture-of-experts slots that use this package's routers through core's `Router`.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Hooks, Rng, type Router, Tensor } from '@sparsekit/core';
import { type BlockParams, backendRef, denseMatrix, Linear, splitGatedMlp } from '@sparsekit/models';
import { loadHfModel, tinyLmPath } from '@sparsekit/models/node';
import { beforeAll, describe, expect, it } from 'vitest';
import { dispatch } from './dispatch.js';
import { loadMetrics } from './metrics.js';
import { recordRoutings } from './record.js';
import type { RouteResult } from './route-result.js';
import { ROUTERS } from './router-table.js';

type Mlp = BlockParams['mlp'];
type Gated = Extract<Mlp, { kind: 'gated' }>;
type Model = Awaited<ReturnType<typeof loadHfModel>>['model'];

const backends = backendRef();
let model: Model;
let ids: Tensor<'i32'>;
let dense: Float32Array;
let original: Mlp[];

beforeAll(async () => {
  const loaded = await loadHfModel(tinyLmPath());
  model = loaded.model;
  const tokens = loaded.tokenizer!.encode(
    readFileSync(join(tinyLmPath(), 'test.txt'), 'utf8').slice(0, 2000),
  );
  ids = new Tensor('i32', [1, 48], Int32Array.from(tokens.slice(0, 48)));
  dense = model.logits(ids).data.slice();
  original = model.params.blocks.map((b) => b.mlp);
});

function restore(): void {
  model.params.blocks.forEach((b, i) => {
    b.mlp = original[i]!;
  });
}

function linear(name: string, data: Float32Array, rows: number, cols: number, bias?: Float32Array): Linear {
  return new Linear(name, denseMatrix(data, rows, cols), bias, backends);
}

/** The dense gated MLP split by its hidden channels into `n` experts whose sum is the MLP. */
const splitByChannels = (mlp: Gated, n: number, block: number): Gated[] =>
  splitGatedMlp(mlp, n, block, backends);

describe('tiny-lm with mixture-of-experts slots', () => {
  // COMET's tree needs at least two experts.
  it.each(ROUTERS.map((r) => r.name).filter((name) => name !== 'comet'))(
    'one expert equal to the dense MLP, routed by %s, gives the dense logits',
    (name) => {
      const entry = ROUTERS.find((r) => r.name === name)!;
      try {
        model.params.blocks.forEach((b, i) => {
          const H = b.mlpNorm.weight.length;
          // A zero gate (logit 0), with bias 1 for the ReLU router (ReLU(0) would switch the expert off).
          const bias = name === 'relu-rms' ? Float32Array.of(1) : undefined;
          const gate = linear(`layers.${i}.mlp.gate`, new Float32Array(H), 1, H, bias);
          b.mlp = {
            kind: 'moe',
            gate,
            router: entry.make({ numExperts: 1, k: 1, eps: 1e-12 }),
            experts: [original[i] as Gated],
          };
        });
        // Every router gives weight 1 (ReLU + RMSNorm: 1 / sqrt(1 + eps), eps 1e-12 here, 1 in float32).
        expect(model.logits(ids).data).toAllClose(dense, { atol: 1e-5, rtol: 0 });
      } finally {
        restore();
      }
    },
  );

  it('eight experts split from the dense MLP by channels sum back to it (all experts, weight 1)', () => {
    const all: Router = {
      numExperts: 8,
      route: ({ logits }) => {
        const tokens = logits.size / 8;
        return {
          k: 8,
          experts: Int32Array.from({ length: tokens * 8 }, (_, i) => i % 8),
          weights: new Float32Array(tokens * 8).fill(1),
        };
      },
    };
    try {
      model.params.blocks.forEach((b, i) => {
        const H = b.mlpNorm.weight.length;
        const gate = linear(`layers.${i}.mlp.gate`, new Float32Array(8 * H), 8, H);
        b.mlp = { kind: 'moe', gate, router: all, experts: splitByChannels(original[i] as Gated, 8, i) };
      });
      expect(model.logits(ids).data).toAllClose(dense, { atol: 1e-4, rtol: 1e-4 });
    } finally {
      restore();
    }
  });

  it.each(ROUTERS.map((r) => r.name))(
    'eight experts routed by %s: runs, and the routing metrics add up to the rows each expert ran',
    (name) => {
      const entry = ROUTERS.find((r) => r.name === name)!;
      const rng = new Rng(17);
      const width = model.params.blocks[0]!.mlpNorm.weight.length;
      const router = recordRoutings(entry.make({ numExperts: 8, k: 2, seed: 3, width }));
      try {
        model.params.blocks.forEach((b, i) => {
          const H = b.mlpNorm.weight.length;
          const gate = linear(`layers.${i}.mlp.gate`, rng.normalArray(8 * H, 0, 0.1), 8, H);
          b.mlp = { kind: 'moe', gate, router, experts: splitByChannels(original[i] as Gated, 8, i) };
        });
        // The rows each expert ran, seen from inside the model.
        const ran = new Map<string, number[]>();
        const hooks = new Hooks();
        hooks.add('mlp.hidden', (_x, c) => {
          if (c.expert === undefined) return;
          const key = `${c.block}:${c.expert.id}`;
          ran.set(key, [...(ran.get(key) ?? []), ...c.expert.tokens]);
        });
        const logits = model.logits(ids, { hooks }).data;
        expect(logits.every(Number.isFinite)).toBe(true);
        expect(router.records.map((r) => r.block)).toEqual([0, 1, 2, 3]);
        for (const { block, routing } of router.records) {
          const r = routing as RouteResult;
          const m = loadMetrics(r, 8);
          const keptSlots = Array.from(r.experts).filter((e) => e >= 0).length;
          expect(m.tokens).toBe(48);
          expect(m.kept).toBe(keptSlots);
          expect(m.tokensPerExpert.reduce((a, b) => a + b, 0)).toBe(keptSlots);
          expect(m.kept + m.dropped).toBe(Array.from(r.chosen).filter((e) => e >= 0).length);
          const grouped = dispatch(r, 8);
          for (let e = 0; e < 8; e++) {
            const rows = Array.from(grouped.tokens.subarray(grouped.offsets[e]!, grouped.offsets[e + 1]!));
            expect(ran.get(`${block}:${e}`) ?? [], `block ${block} expert ${e}`).toEqual(rows);
            expect(rows.length).toBe(m.tokensPerExpert[e]);
          }
        }
      } finally {
        restore();
      }
    },
  );
});
