// STUN's expert pruning on tiny-lm with its MLPs split by channels into eight experts, top-2 routed.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { InvalidArgumentError, Rng, Tensor } from '@sparsekit/core';
import { type BlockParams, backendRef, denseMatrix, Linear, splitGatedMlp } from '@sparsekit/models';
import { loadHfModel, tinyLmPath } from '@sparsekit/models/node';
import { describe, expect, it } from 'vitest';
import { ExpertChoiceRouter } from './expert-choice.js';
import { ReluRmsRouter } from './relu-rms.js';
import { applyStun, stunPlan } from './stun.js';
import { SoftmaxTopKRouter } from './top-k.js';

type Mlp = BlockParams['mlp'];
type Gated = Extract<Mlp, { kind: 'gated' }>;
type Model = Awaited<ReturnType<typeof loadHfModel>>['model'];

const backends = backendRef();
const E = 8;
const SEQ = 64;

function linear(name: string, data: Float32Array, rows: number, cols: number): Linear {
  return new Linear(name, denseMatrix(data, rows, cols), undefined, backends);
}

/**
 * The dense gated MLP split by hidden channels into `n` experts (their sum is the MLP), each down
 * projection scaled by n / k so a top-k mixture with renormalised weights keeps the MLP's scale;
 * gate row e is the mean of expert e's gate_proj rows (the direction that opens its channels).
 */
function splitByChannels(
  mlp: Gated,
  n: number,
  k: number,
  block: number,
): { gate: Linear; experts: Gated[] } {
  const [I, H] = [mlp.gate.outFeatures, mlp.gate.inFeatures];
  const per = I / n;
  const g = mlp.gate.getWeight().data;
  const gateRows = new Float32Array(n * H);
  for (let e = 0; e < n; e++)
    for (let c = 0; c < per; c++)
      for (let x = 0; x < H; x++) gateRows[e * H + x]! += g[(e * per + c) * H + x]! / per;
  const experts = splitGatedMlp(mlp, n, block, backends, { downScale: n / k });
  return { gate: linear(`layers.${block}.mlp.gate`, gateRows, n, H), experts };
}

async function moeTinyLm(): Promise<{ model: Model; tokens: number[] }> {
  const loaded = await loadHfModel(tinyLmPath());
  const model = loaded.model;
  model.params.blocks.forEach((b, i) => {
    const { gate, experts } = splitByChannels(b.mlp as Gated, E, 2, i);
    b.mlp = { kind: 'moe', gate, router: new SoftmaxTopKRouter({ numExperts: E, k: 2 }), experts };
  });
  const text = readFileSync(join(tinyLmPath(), 'test.txt'), 'utf8');
  return { model, tokens: loaded.tokenizer!.encode(text.slice(0, 12_000)) };
}

function windows(tokens: number[], from: number, count: number): Tensor<'i32'>[] {
  return Array.from(
    { length: count },
    (_, w) =>
      new Tensor('i32', [1, SEQ], Int32Array.from(tokens.slice((from + w) * SEQ, (from + w + 1) * SEQ))),
  );
}

function perplexity(model: Model, batches: Tensor<'i32'>[]): number {
  let nll = 0;
  let n = 0;
  for (const ids of batches) {
    const logits = model.logits(ids).data;
    const V = model.vocabSize;
    for (let t = 0; t + 1 < SEQ; t++) {
      let max = Number.NEGATIVE_INFINITY;
      for (let v = 0; v < V; v++) max = Math.max(max, logits[t * V + v]!);
      let sum = 0;
      for (let v = 0; v < V; v++) sum += Math.exp(logits[t * V + v]! - max);
      nll += max + Math.log(sum) - logits[t * V + ids.data[t + 1]!]!;
      n++;
    }
  }
  return Math.exp(nll / n);
}

function routers(model: Model): number[] {
  return model.params.blocks.map((b) => (b.mlp.kind === 'moe' ? b.mlp.router.numExperts : 0));
}

describe('STUN expert pruning', () => {
  it('removing 0 experts changes nothing; the plan removes exactly the requested count per layer', async () => {
    const { model, tokens } = await moeTinyLm();
    const calibration = windows(tokens, 0, 2);
    const evalIds = windows(tokens, 10, 1)[0]!;
    const before = model.logits(evalIds).data.slice();
    const none = await stunPlan(model, calibration, { ratio: 0 });
    expect(none.layers.map((l) => l.removed)).toEqual(model.moeBlocks().map(() => []));
    applyStun(model, none);
    expect(model.logits(evalIds).data).toEqual(before);
    expect(routers(model)).toEqual(model.moeBlocks().map(() => E));

    const plan = await stunPlan(model, calibration, { targetExperts: 5, lambda: 1 });
    expect(plan.tokens).toBe(2 * SEQ);
    for (const layer of plan.layers) {
      expect(layer.removed).toHaveLength(3);
      expect(new Set(layer.removed).size).toBe(3);
      expect(layer.kept).toHaveLength(5);
      expect([...layer.kept, ...layer.removed].sort((a, b) => a - b)).toEqual([...Array(E).keys()]);
      // Top-2 of eight: every token is routed to two experts.
      expect(layer.frequency.reduce((a, b) => a + b, 0)).toBe(2 * 2 * SEQ);
      // Each removal names an expert still kept at that step.
      layer.steps.forEach((s, i) => {
        expect(layer.removed.slice(0, i + 1)).not.toContain(s.keptWith);
      });
    }
    expect((await stunPlan(model, calibration, { ratio: 0.25 })).layers[0]!.removed).toHaveLength(2);
    applyStun(model, plan);
    expect(routers(model)).toEqual(model.moeBlocks().map(() => 5));
    expect(model.moeBlocks().map((b) => model.expertCount(b))).toEqual(model.moeBlocks().map(() => 5));
    expect(model.logits(evalIds).data.every(Number.isFinite)).toBe(true);
    // A stale plan (made for eight experts) is refused.
    expect(() => applyStun(model, plan)).toThrow(InvalidArgumentError);
  });

  it('two identical experts (same layers, same gate rows) are the first pair removed from', async () => {
    const { model, tokens } = await moeTinyLm();
    const [a, b] = [2, 5];
    for (const block of model.moeBlocks()) {
      const mlp = model.params.blocks[block]!.mlp;
      if (mlp.kind !== 'moe') continue;
      mlp.experts[b] = mlp.experts[a]!;
      const w = mlp.gate.getWeight();
      const H = w.shape[1]!;
      const data = w.data.slice();
      data.copyWithin(b * H, a * H, (a + 1) * H);
      mlp.gate.setWeight(new Tensor('f32', w.shape, data));
    }
    for (const lambda of [0, 1]) {
      const plan = await stunPlan(model, windows(tokens, 0, 2), { targetExperts: 6, lambda });
      for (const layer of plan.layers) {
        expect(layer.steps[0]!.expert, `block ${layer.block}`).toBe(b);
        expect(layer.steps[0]!.keptWith).toBe(a);
        expect(layer.routerSimilarity[a * E + b]).toBeCloseTo(1, 6);
      }
    }
  });

  it('degrades perplexity less than removing random experts (measured, seeded)', async () => {
    const { model, tokens } = await moeTinyLm();
    const calibration = windows(tokens, 0, 4);
    const evalSet = windows(tokens, 20, 2);
    const full = perplexity(model, evalSet);
    type Moe = Extract<Mlp, { kind: 'moe' }>;
    const saved = model.params.blocks.map((b) => {
      const m = b.mlp as Moe;
      return { m, gate: m.gate.getWeight().data.slice(), experts: [...m.experts], router: m.router };
    });
    const reset = () => {
      for (const { m, gate, experts, router } of saved) {
        m.gate.reshape(gate, E, m.gate.inFeatures);
        m.experts = [...experts];
        m.router = router;
      }
    };
    const dense = perplexity((await loadHfModel(tinyLmPath())).model, evalSet);
    const results: Record<string, number> = { dense, full };
    const remove = 2;
    for (const lambda of [0, 1]) {
      const plan = await stunPlan(model, calibration, { targetExperts: E - remove, lambda });
      applyStun(model, plan);
      results[`stunLambda${lambda}`] = perplexity(model, evalSet);
      reset();
    }
    expect(perplexity(model, evalSet)).toBeCloseTo(full, 6);
    const rng = new Rng(7);
    const random: number[] = [];
    for (let trial = 0; trial < 4; trial++) {
      const lists = model.params.blocks.map(() => Array.from(rng.sample(E, remove)));
      model.removeExperts(lists);
      random.push(perplexity(model, evalSet));
      reset();
    }
    results.randomMean = random.reduce((s, v) => s + v, 0) / random.length;
    results.randomMin = Math.min(...random);
    console.log('STUN perplexity (tiny-lm split into 8 experts, top-2, 2 removed per layer):', results);
    // Reported, not asserted: on this construction STUN's choice is not better than random (README).
    for (const v of Object.values(results)) expect(Number.isFinite(v)).toBe(true);
  }, 120_000);

  it('routers rebuilt for the experts left slice their per-expert parameters', () => {
    const w = Float32Array.from({ length: 4 * 3 }, (_, i) => i);
    const r = new SoftmaxTopKRouter({ numExperts: 4, k: 2, gateWeight: w }).withExperts([0, 3]);
    expect(r.numExperts).toBe(2);
    expect(Array.from(r.options.gateWeight!)).toEqual([0, 1, 2, 9, 10, 11]);
    expect(new SoftmaxTopKRouter({ numExperts: 4, k: 2 }).withExperts([1]).k).toBe(1);
    expect(new ExpertChoiceRouter({ numExperts: 4 }).withExperts([1, 2]).numExperts).toBe(2);
    const relu = new ReluRmsRouter({ numExperts: 4, normWeight: [1, 2, 3, 4] }).withExperts([1, 3]);
    expect(relu.options.normWeight).toEqual([2, 4]);
  });

  it('rejects bad options', async () => {
    const { model, tokens } = await moeTinyLm();
    const cal = windows(tokens, 0, 1);
    await expect(stunPlan(model, cal, {})).rejects.toThrow(InvalidArgumentError);
    await expect(stunPlan(model, cal, { ratio: 0.5, targetExperts: 4 })).rejects.toThrow(
      InvalidArgumentError,
    );
    await expect(stunPlan(model, cal, { targetExperts: 9 })).rejects.toThrow(InvalidArgumentError);
    await expect(stunPlan(model, cal, { ratio: 1 })).rejects.toThrow(InvalidArgumentError);
    await expect(stunPlan(model, cal, { ratio: 0.5, lambda: -1 })).rejects.toThrow(InvalidArgumentError);
    await expect(stunPlan(model, [], { ratio: 0.5 })).rejects.toThrow(InvalidArgumentError);
  });
});
