import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import { Rng, Tensor } from '@sparsekit/core';
import { readSafetensors } from '@sparsekit/core/node';
import { beforeAll, describe, expect, it } from 'vitest';
import type { ModelConfig } from '../config.js';
import { hfTinyDir } from '../hf/hf-tiny.test-util.js';
import { loadHfModel } from '../hf/load.js';
import { saveModel } from '../hf/save.js';
import { denseMatrix, Linear } from '../runtime/linear.js';
import type { GatedMlp, MoeMlp } from '../runtime/mlp.js';
import { TopKRouter } from '../runtime/mlp.js';
import { TransformerLM } from '../runtime/model.js';
import { backendRef } from '../runtime/steps.js';
import { LlamaTwin } from './llama-twin.js';
import { expertLoad } from './moe-losses.js';
import type { TwinRouting } from './moe-mlp.js';

const backends = backendRef();
const [E, K, I] = [4, 2, 16];
const tokens = [1, 7, 3, 30, 2, 9, 44, 12, 5, 60, 21, 8];

function linear(rng: Rng, name: string, rows: number, cols: number, std: number): Linear {
  return new Linear(name, denseMatrix(rng.normalArray(rows * cols, 0, std), rows, cols), undefined, backends);
}

/** The hf-tiny Llama with every block's MLP replaced by a random Mixtral mixture (4 experts, top-2). */
async function randomMoeModel(seed: number) {
  const { model, config } = await loadHfModel(hfTinyDir('llama'));
  const rng = new Rng(seed);
  const H = config.hiddenSize;
  model.params.blocks.forEach((b, l) => {
    const n = `layers.${l}.mlp`;
    b.mlp = {
      kind: 'moe',
      gate: linear(rng, `${n}.gate`, E, H, 0.5),
      router: new TopKRouter(E, K),
      experts: Array.from({ length: E }, (_, e) => ({
        kind: 'gated' as const,
        gate: linear(rng, `${n}.experts.${e}.gate_proj`, I, H, 0.2),
        up: linear(rng, `${n}.experts.${e}.up_proj`, I, H, 0.2),
        down: linear(rng, `${n}.experts.${e}.down_proj`, H, I, 0.2),
      })),
    };
  });
  const moeConfig: ModelConfig = {
    ...config,
    intermediateSize: I,
    moe: { numExperts: E, expertsPerToken: K },
  };
  return { model: new TransformerLM(moeConfig, model.params, backends), config: moeConfig };
}

const twinLogits = (twin: LlamaTwin, ids: number[]) =>
  tf.tidy(() => Float32Array.from(twin.logits(tf.tensor2d([ids], [1, ids.length], 'int32')).dataSync()));
const runtimeLogits = (model: TransformerLM, ids: number[]) =>
  model.logits(new Tensor('i32', [1, ids.length], Int32Array.from(ids))).data;

/** Plain float64 load-balancing loss and z-loss of one layer's router logits [tokens, experts]. */
function referenceLosses(logits: Float32Array, experts: number, k: number) {
  const n = logits.length / experts;
  const share = new Float64Array(experts);
  const meanProb = new Float64Array(experts);
  let z = 0;
  for (let t = 0; t < n; t++) {
    const row = Array.from(logits.subarray(t * experts, (t + 1) * experts));
    const max = Math.max(...row);
    const sum = row.reduce((s, v) => s + Math.exp(v - max), 0);
    const p = row.map((v) => Math.exp(v - max) / sum);
    for (let e = 0; e < experts; e++) meanProb[e]! += p[e]! / n;
    const order = [...p.keys()].sort((a, b) => p[b]! - p[a]! || a - b);
    for (const e of order.slice(0, k)) share[e]! += 1 / (n * k);
    z += (max + Math.log(sum)) ** 2 / n;
  }
  let balance = 0;
  for (let e = 0; e < experts; e++) balance += experts * share[e]! * meanProb[e]!;
  return { balance, z };
}

describe('tfjs twin of a mixture-of-experts Llama (Mixtral)', () => {
  beforeAll(async () => {
    await tf.setBackend('cpu');
  });

  it('gives the runtime logits (runtime -> twin -> runtime), and saves in the Mixtral layout', async () => {
    const { model, config } = await randomMoeModel(21);
    const want = runtimeLogits(model, tokens).slice();
    const twin = LlamaTwin.fromParams(tf, config, model.params);
    expect(twin.weights.layers.every((l) => l.moe !== undefined)).toBe(true);
    expect(twinLogits(twin, tokens)).toAllClose(want, { atol: 1e-4, rtol: 0 });
    const back = new TransformerLM(config, twin.toParams(backends), backends);
    expect(runtimeLogits(back, tokens)).toAllClose(want, { atol: 1e-4, rtol: 0 });
    // Every weight comes back exactly, under the runtime's names.
    const names = (m: TransformerLM) => m.modules().map((e) => `${e.kind}:${e.name}`);
    expect(names(back)).toEqual(names(model));
    const source = model.params.blocks[1]!.mlp as MoeMlp;
    const copy = back.params.blocks[1]!.mlp as MoeMlp;
    expect(copy.gate.getWeight().data).toEqual(source.gate.getWeight().data);
    const [se, ce] = [source.experts[3] as GatedMlp, copy.experts[3] as GatedMlp];
    for (const p of ['gate', 'up', 'down'] as const)
      expect(ce[p].getWeight().data).toEqual(se[p].getWeight().data);
    expect(copy.router).toMatchObject({ numExperts: E, k: K, normalize: true });
    const dir = await mkdtemp(join(tmpdir(), 'sparsekit-moe-twin-'));
    try {
      await saveModel(back, dir);
      const saved = await readSafetensors(join(dir, 'model.safetensors'));
      expect(Object.keys(saved.tensors)).toContain('model.layers.1.block_sparse_moe.experts.3.w2.weight');
      expect(Object.keys(saved.tensors)).toContain('model.layers.0.block_sparse_moe.gate.weight');
      expect(JSON.parse(await readFile(join(dir, 'config.json'), 'utf8'))).toMatchObject({
        model_type: 'mixtral',
        num_local_experts: E,
        num_experts_per_tok: K,
      });
      const reloaded = (await loadHfModel(dir)).model;
      expect(runtimeLogits(reloaded, tokens)).toAllClose(want, { atol: 1e-4, rtol: 0 });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    twin.dispose();
  });

  it('a fresh MoE twin (config.moe) gives the logits of its runtime conversion (twin -> runtime -> twin)', async () => {
    const { config } = await randomMoeModel(1);
    const twin = LlamaTwin.init(tf, config, 5);
    // Spread the router so that the top-k choice is not decided by rounding.
    for (const l of twin.weights.layers) l.moe!.gate.assign(tf.mul(l.moe!.gate, 25));
    const want = twinLogits(twin, tokens);
    const runtime = new TransformerLM(config, twin.toParams(backends), backends);
    expect(runtimeLogits(runtime, tokens)).toAllClose(want, { atol: 1e-4, rtol: 0 });
    const again = LlamaTwin.fromParams(tf, config, runtime.params);
    expect(twinLogits(again, tokens)).toAllClose(want, { atol: 1e-5, rtol: 0 });
    twin.dispose();
    again.dispose();
  });

  it('a shared expert converts both ways; the router gradient equals finite differences of the loss', async () => {
    const { model, config } = await randomMoeModel(31);
    const rng = new Rng(3);
    const H = config.hiddenSize;
    const n = 'layers.0.mlp.shared_expert';
    (model.params.blocks[0]!.mlp as MoeMlp).sharedExpert = {
      kind: 'gated',
      gate: linear(rng, `${n}.gate_proj`, I, H, 0.2),
      up: linear(rng, `${n}.up_proj`, I, H, 0.2),
      down: linear(rng, `${n}.down_proj`, H, I, 0.2),
    };
    const want = runtimeLogits(model, tokens).slice();
    const twin = LlamaTwin.fromParams(tf, config, model.params);
    expect(twin.weights.layers[0]!.moe!.shared).toBeDefined();
    expect(twinLogits(twin, tokens)).toAllClose(want, { atol: 1e-4, rtol: 0 });
    const back = new TransformerLM(config, twin.toParams(backends), backends);
    expect(runtimeLogits(back, tokens)).toAllClose(want, { atol: 1e-4, rtol: 0 });
    expect(back.modules().map((m) => m.name)).toContain(`${n}.down_proj`);
    // d loss / d router gate, with both router losses on: autodiff against central differences.
    const inputs = tf.tensor2d([tokens.slice(0, -1)], [1, tokens.length - 1], 'int32');
    const targets = tf.tensor2d([tokens.slice(1)], [1, tokens.length - 1], 'int32');
    const options = { loadBalance: 1, routerZ: 0.1 };
    const router = twin.weights.layers[1]!.moe!.gate;
    const { value, grads } = tf.variableGrads(() => twin.loss(inputs, targets, options), [router]);
    const grad = grads[router.name]!.dataSync().slice();
    tf.dispose([value, ...Object.values(grads)]);
    const original = router.dataSync().slice();
    const lossAt = (i: number, delta: number) => {
      const w = original.slice();
      w[i]! += delta;
      router.assign(tf.tensor2d(w, router.shape as [number, number]));
      return tf.tidy(() => twin.loss(inputs, targets, options).dataSync()[0]!);
    };
    const eps = 1e-2;
    for (const i of [0, 5, 17, 42, 77, 101]) {
      const numeric = (lossAt(i, eps) - lossAt(i, -eps)) / (2 * eps);
      expect(Math.abs(numeric - grad[i]!)).toBeLessThan(2e-3 + 0.05 * Math.abs(numeric));
    }
    expect(Math.max(...Array.from(grad, Math.abs))).toBeGreaterThan(1e-2);
    twin.dispose();
  });

  it('load-balancing and z-loss equal a float64 reference on the router logits, averaged over layers', async () => {
    const { model, config } = await randomMoeModel(8);
    const twin = LlamaTwin.fromParams(tf, config, model.params);
    const inputs = tf.tensor2d([tokens.slice(0, -1), tokens.slice(1)], [2, tokens.length - 1], 'int32');
    const targets = tf.tensor2d([tokens.slice(1), tokens.slice(0, -1)], [2, tokens.length - 1], 'int32');
    const layers = tf.tidy(() => {
      const routing: TwinRouting[] = [];
      twin.logits(inputs, undefined, routing);
      return routing.map((r) => referenceLosses(r.logits.dataSync() as Float32Array, E, K));
    });
    expect(layers).toHaveLength(2);
    const balance = (layers[0]!.balance + layers[1]!.balance) / 2;
    const z = (layers[0]!.z + layers[1]!.z) / 2;
    const read = (t: tf.Scalar | undefined) => t!.dataSync()[0]!;
    const [plain, weighted] = tf.tidy(() => {
      const a = twin.lossTerms(inputs, targets);
      const b = twin.lossTerms(inputs, targets, { loadBalance: 0.01, routerZ: 0.001 });
      return [a, b].map((t) => ({
        total: read(t.total),
        crossEntropy: read(t.crossEntropy),
        loadBalance: read(t.loadBalance),
        routerZ: read(t.routerZ),
      }));
    });
    expect(plain!.loadBalance).toBeCloseTo(balance, 5);
    expect(plain!.routerZ).toBeCloseTo(z, 4);
    expect(plain!.total).toBe(plain!.crossEntropy);
    expect(weighted!.total).toBeCloseTo(plain!.crossEntropy + 0.01 * balance + 0.001 * z, 5);
    // A dense twin has no router terms.
    const dense = LlamaTwin.fromParams(
      tf,
      (await loadHfModel(hfTinyDir('llama'))).config,
      (await loadHfModel(hfTinyDir('llama'))).model.params,
    );
    const terms = tf.tidy(() => Object.keys(dense.lossTerms(inputs, targets, { loadBalance: 1 })));
    expect(terms.sort()).toEqual(['crossEntropy', 'total']);
    twin.dispose();
    dense.dispose();
  });

  it('a one-expert mixture equals the dense twin', async () => {
    const { model, config } = await loadHfModel(hfTinyDir('llama'));
    const dense = LlamaTwin.fromParams(tf, config, model.params);
    const rng = new Rng(2);
    model.params.blocks.forEach((b, l) => {
      b.mlp = {
        kind: 'moe',
        gate: linear(rng, `layers.${l}.mlp.gate`, 1, config.hiddenSize, 1),
        router: new TopKRouter(1, 1),
        experts: [b.mlp as GatedMlp],
      };
    });
    const moe = LlamaTwin.fromParams(
      tf,
      { ...config, moe: { numExperts: 1, expertsPerToken: 1 } },
      model.params,
    );
    expect(twinLogits(moe, tokens)).toAllClose(twinLogits(dense, tokens), { atol: 1e-6, rtol: 0 });
    const inputs = tf.tensor2d([tokens.slice(0, -1)], [1, tokens.length - 1], 'int32');
    const targets = tf.tensor2d([tokens.slice(1)], [1, tokens.length - 1], 'int32');
    const loss = (t: LlamaTwin) => tf.tidy(() => t.loss(inputs, targets).dataSync()[0]!);
    expect(loss(moe)).toBeCloseTo(loss(dense), 6);
    dense.dispose();
    moe.dispose();
  });

  it('trains: Adam steps lower the loss, and gradients reach the router', async () => {
    const { config } = await randomMoeModel(1);
    const twin = LlamaTwin.init(tf, config, 11);
    const seq = Array.from({ length: 17 }, (_, i) => (i * 5) % 64);
    const inputs = tf.tensor2d([seq.slice(0, 16)], [1, 16], 'int32');
    const targets = tf.tensor2d([seq.slice(1)], [1, 16], 'int32');
    const router = twin.weights.layers[0]!.moe!.gate;
    const before = router.dataSync().slice();
    const options = { loadBalance: 0.01, routerZ: 0.001 };
    const grads = tf.variableGrads(() => twin.loss(inputs, targets, options), [router]);
    expect(tf.tidy(() => tf.max(tf.abs(grads.grads[router.name]!)).dataSync()[0]!)).toBeGreaterThan(1e-6);
    tf.dispose([grads.value, ...Object.values(grads.grads)]);
    const optimizer = tf.train.adam(0.01);
    const losses: number[] = [];
    for (let step = 0; step < 25; step++) {
      const loss = optimizer.minimize(() => twin.loss(inputs, targets, options), true, twin.variables())!;
      losses.push(loss.dataSync()[0]!);
      loss.dispose();
    }
    expect(losses.at(-1)!).toBeLessThan(losses[0]! / 2);
    const after = router.dataSync();
    expect(Math.max(...after.map((v, i) => Math.abs(v - before[i]!)))).toBeGreaterThan(1e-3);
    twin.dispose();
  });

  it('the load-balancing loss spreads a router that sends every token to the same two experts', async () => {
    const { config } = await randomMoeModel(1);
    const c: ModelConfig = { ...config, numLayers: 1 };
    const H = c.hiddenSize;
    const rng = new Rng(4);
    const u = Float32Array.from({ length: H }, () => 1 / Math.sqrt(H));
    const imbalanced = () => {
      const twin = LlamaTwin.init(tf, c, 7);
      // Every embedding along u (plus noise); the router's experts 0 and 1 read u, 2 and 3 nothing.
      const embed = rng.normalArray(c.vocabSize * H, 0, 0.3).map((v, i) => v + 2 * u[i % H]!);
      twin.weights.embed.assign(tf.tensor2d(embed, [c.vocabSize, H]));
      const gate = new Float32Array(H * E);
      for (let h = 0; h < H; h++) [gate[h * E], gate[h * E + 1]] = [2 * u[h]!, u[h]!];
      twin.weights.layers[0]!.moe!.gate.assign(tf.tensor2d(gate, [H, E]));
      return twin;
    };
    const seq = Array.from({ length: 33 }, (_, i) => (i * 7 + 3) % 64);
    const inputs = tf.tensor2d([seq.slice(0, 32)], [1, 32], 'int32');
    const targets = tf.tensor2d([seq.slice(1)], [1, 32], 'int32');
    const load = (twin: LlamaTwin) =>
      tf.tidy(() => {
        const routing: TwinRouting[] = [];
        twin.logits(inputs, undefined, routing);
        return expertLoad(routing)[0]!;
      });
    const train = (loadBalance: number) => {
      const twin = imbalanced();
      expect(load(twin)).toEqual([0.5, 0.5, 0, 0]);
      const optimizer = tf.train.adam(0.02);
      for (let step = 0; step < 30; step++)
        optimizer
          .minimize(() => twin.loss(inputs, targets, { loadBalance }), true, twin.variables())
          ?.dispose();
      const share = load(twin);
      twin.dispose();
      return share;
    };
    // Imbalance: experts * sum of squared shares (1 when balanced, 2 for two experts of four).
    const imbalance = (share: number[]) => E * share.reduce((s, v) => s + v * v, 0);
    const without = imbalance(train(0));
    const withAux = imbalance(train(1));
    expect(withAux).toBeLessThan(without - 0.2);
  });
});
