// The simulation against the runtime: tiny-lm with block 0's MLP replaced by eight experts cut from
// it by channels behind softmax top-2, run by models' mixture-of-experts slot; the same routing and
// MLP input through the worker-thread devices give the slot's output.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Hooks, Rng, Tensor } from '@sparsekit/core';
import { type BlockParams, backendRef, denseMatrix, Linear, splitGatedMlp } from '@sparsekit/models';
import { loadHfModel, tinyLmPath } from '@sparsekit/models/node';
import { describe, expect, it } from 'vitest';
import { recordRoutings } from '../record.js';
import { softmaxTopK } from '../top-k.js';
import { expertParallelCost } from './cost-model.js';
import type { GatedExpert } from './experts.js';
import { simulateExpertParallel } from './simulation.js';

type Gated = Extract<BlockParams['mlp'], { kind: 'gated' }>;
const backends = backendRef();

function linear(name: string, data: Float32Array, rows: number, cols: number): Linear {
  return new Linear(name, denseMatrix(data, rows, cols), undefined, backends);
}

describe('expert-parallel simulation of a tiny-lm MoE block', () => {
  it('gives the models slot output on 2 and 4 devices, moving the predicted bytes', async () => {
    const { model, tokenizer } = await loadHfModel(tinyLmPath());
    const text = readFileSync(join(tinyLmPath(), 'test.txt'), 'utf8').slice(0, 1000);
    const ids = new Tensor('i32', [1, 32], Int32Array.from(tokenizer!.encode(text).slice(0, 32)));
    const block = model.params.blocks[0]!;
    const H = block.mlpNorm.weight.length;
    const experts = splitGatedMlp(block.mlp as Gated, 8, 0, backends);
    const router = recordRoutings(softmaxTopK({ numExperts: 8, k: 2 }));
    const gate = linear('layers.0.mlp.gate', new Rng(4).normalArray(8 * H, 0, 0.1), 8, H);
    block.mlp = { kind: 'moe', gate, router, experts };
    // The MLP's input, and its output as the stream after the MLP minus the stream before it.
    let input = new Float32Array(0);
    let before = new Float32Array(0);
    let after = new Float32Array(0);
    const hooks = new Hooks();
    hooks.add('mlp.input', (x, c) => {
      if (c.block === 0) input = x.data.slice();
    });
    hooks.add('stream', (x, c) => {
      if (c.point?.at === 'attention' && c.point.block === 0) before = x.data.slice();
      if (c.point?.at === 'mlp' && c.point.block === 0) after = x.data.slice();
    });
    model.logits(ids, { hooks });
    const slotOutput = after.map((v, i) => v - before[i]!);
    expect(Math.max(...slotOutput.map(Math.abs))).toBeGreaterThan(1e-2);
    const routing = router.records.find((r) => r.block === 0)!.routing;
    const weights: GatedExpert[] = experts.map((e) => ({
      gate: e.gate.getWeight().data,
      up: e.up.getWeight().data,
      down: e.down.getWeight().data,
      inner: e.gate.outFeatures,
    }));
    for (const devices of [2, 4]) {
      const sim = await simulateExpertParallel(routing, input, { experts: weights, width: H, devices });
      expect(sim.output).toAllClose(slotOutput, { atol: 1e-5, rtol: 1e-5 });
      const cost = expertParallelCost(routing, { numExperts: 8, devices, width: H });
      expect(Array.from(sim.dispatchBytes)).toEqual(Array.from(cost.dispatchBytes));
      expect(cost.keptSlots).toBe(64);
    }
  });
});
