import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import { type Router, Tensor } from '@sparsekit/core';
import { beforeAll, describe, expect, it } from 'vitest';
import { UnsupportedModelError } from '../errors.js';
import { hfTinyDir, hfTinyExpected } from '../hf/hf-tiny.test-util.js';
import { loadHfModel } from '../hf/load.js';
import { denseMatrix, Linear } from '../runtime/linear.js';
import { type GatedMlp, TopKRouter } from '../runtime/mlp.js';
import { TransformerLM } from '../runtime/model.js';
import { backendRef } from '../runtime/steps.js';
import { LlamaTwin } from './llama-twin.js';

const dir = hfTinyDir('llama');

describe('tfjs twin of the Llama architecture', () => {
  beforeAll(async () => {
    await tf.setBackend('cpu');
  });

  it('gives the runtime logits for the same weights, and round-trips its weights', async () => {
    const { model, config } = await loadHfModel(dir);
    const want = hfTinyExpected('llama');
    const twin = LlamaTwin.fromParams(tf, config, model.params);
    const logits = tf.tidy(() =>
      twin.logits(tf.tensor2d([want.tokens], [1, want.tokens.length], 'int32')).dataSync(),
    );
    expect(Float32Array.from(logits)).toAllClose(want.logits.flat(), { atol: 1e-4, rtol: 0 });
    const back = new TransformerLM(config, twin.toParams(backendRef()), backendRef());
    const ids = new Tensor('i32', [1, want.tokens.length], Int32Array.from(want.tokens));
    expect(back.logits(ids).data).toAllClose(want.logits.flat(), { atol: 1e-4, rtol: 0 });
    twin.dispose();
  });

  it("hands out each block's output on the residual stream, as the runtime's stream hook sees it", async () => {
    const { model, config } = await loadHfModel(dir);
    const want = hfTinyExpected('llama');
    const seen: Float32Array[] = [];
    const handle = model.hooks.add('stream', (t, c) => {
      if (c.point?.at === 'mlp') seen.push(Float32Array.from(t.data));
    });
    const ids = new Tensor('i32', [1, want.tokens.length], Int32Array.from(want.tokens));
    model.logits(ids);
    handle.remove();
    const twin = LlamaTwin.fromParams(tf, config, model.params);
    const hidden: tf.Tensor[] = [];
    const logits = twin.logits(
      tf.tensor2d([want.tokens], [1, want.tokens.length], 'int32'),
      undefined,
      undefined,
      hidden,
    );
    expect(hidden).toHaveLength(config.numLayers);
    expect(seen).toHaveLength(config.numLayers);
    hidden.forEach((h, i) => {
      expect(h.shape).toEqual([want.tokens.length, config.hiddenSize]);
      expect(h.dataSync() as Float32Array).toAllClose(seen[i]!, { atol: 1e-4, rtol: 1e-4 });
    });
    tf.dispose([...hidden, logits]);
    twin.dispose();
  });

  it('refuses a model it has no counterpart for (a router other than top-k, dense experts), naming the module', async () => {
    const { model, config } = await loadHfModel(dir);
    const b = model.params.blocks[1]!;
    const experts = [b.mlp as GatedMlp];
    const gate = new Linear(
      'layers.1.mlp.gate',
      denseMatrix(new Float32Array(32), 1, 32),
      undefined,
      backendRef(),
    );
    const always: Router = {
      numExperts: 1,
      route: ({ logits }) => ({
        k: 1,
        experts: new Int32Array(logits.size),
        weights: new Float32Array(logits.size).fill(1),
      }),
    };
    b.mlp = { kind: 'moe', gate, router: always, experts };
    expect(() => LlamaTwin.fromParams(tf, config, model.params)).toThrow(/layers\.1\.mlp\.router/);
    expect(() => LlamaTwin.fromParams(tf, config, model.params)).toThrow(UnsupportedModelError);
    b.mlp = {
      kind: 'moe',
      gate,
      router: new TopKRouter(1, 1),
      experts: [{ kind: 'dense', up: experts[0]!.up, down: experts[0]!.down }],
    };
    expect(() => LlamaTwin.fromParams(tf, config, model.params)).toThrow(
      /dense expert \(layers\.1\.mlp\.experts\.0\)/,
    );
  });

  it('trains: a few Adam steps lower the loss on a repeated sequence', async () => {
    const { config } = await loadHfModel(dir);
    const twin = LlamaTwin.init(tf, config, 3);
    const seq = Array.from({ length: 17 }, (_, i) => (i * 5) % 64);
    const inputs = tf.tensor2d([seq.slice(0, 16)], [1, 16], 'int32');
    const targets = tf.tensor2d([seq.slice(1)], [1, 16], 'int32');
    const optimizer = tf.train.adam(0.01);
    const losses: number[] = [];
    for (let step = 0; step < 30; step++) {
      const loss = optimizer.minimize(() => twin.loss(inputs, targets), true, twin.variables()) as tf.Scalar;
      losses.push(loss.dataSync()[0]!);
      loss.dispose();
    }
    expect(losses[0]).toBeCloseTo(Math.log(64), 0);
    expect(losses.at(-1)!).toBeLessThan(losses[0]! / 3);
    twin.dispose();
  });

  it('ReLU-fied (and FATReLU) twins give the runtime relu model logits; an L1 term pushes act(gate) to zero', async () => {
    const { model, config } = await loadHfModel(dir);
    const want = hfTinyExpected('llama');
    const relu = { ...config, activation: 'relu' as const };
    const twin = LlamaTwin.fromParams(tf, relu, model.params);
    const ids = new Tensor('i32', [1, want.tokens.length], Int32Array.from(want.tokens));
    const runtime = new TransformerLM(relu, twin.toParams(backendRef()), backendRef());
    const logits = tf.tidy(() =>
      twin.logits(tf.tensor2d([want.tokens], [1, want.tokens.length], 'int32')).dataSync(),
    );
    expect(Float32Array.from(logits)).toAllClose(runtime.logits(ids).data, { atol: 1e-4, rtol: 0 });
    // FATReLU at T equals ReLU with act(gate) <= T zeroed: the runtime's mlp.gate site, thresholded.
    twin.fatRelu = 0.05;
    const shifted = tf.tidy(() =>
      twin.logits(tf.tensor2d([want.tokens], [1, want.tokens.length], 'int32')).dataSync(),
    );
    runtime.hooks.add('mlp.gate', (t) => t.data.map((v) => (v > 0.05 ? v : 0)));
    expect(Float32Array.from(shifted)).toAllClose(runtime.logits(ids).data, { atol: 1e-4, rtol: 0 });
    twin.fatRelu = undefined;
    // L1 on act(gate): the penalised loss is larger, and training with it leaves more exact zeros.
    const inputs = tf.tensor2d([want.tokens.slice(0, -1)], [1, want.tokens.length - 1], 'int32');
    const targets = tf.tensor2d([want.tokens.slice(1)], [1, want.tokens.length - 1], 'int32');
    const zeros = () =>
      tf.tidy(() => {
        const taps: tf.Tensor[] = [];
        twin.logits(inputs, taps);
        const all = taps.flatMap((t) => Array.from(t.dataSync()));
        return all.filter((v) => v === 0).length / all.length;
      });
    const plain = tf.tidy(() => twin.loss(inputs, targets).dataSync()[0]!);
    const penalised = tf.tidy(() => twin.loss(inputs, targets, { activationL1: 1 }).dataSync()[0]!);
    expect(penalised).toBeGreaterThan(plain);
    const before = zeros();
    const optimizer = tf.train.adam(0.01);
    for (let step = 0; step < 20; step++)
      optimizer
        .minimize(() => twin.loss(inputs, targets, { activationL1: 1 }), true, twin.variables())
        ?.dispose();
    expect(zeros()).toBeGreaterThan(before + 0.05);
    expect(() => LlamaTwin.fromParams(tf, { ...config, activation: 'gelu' }, model.params)).toThrow(
      /'silu' or 'relu'/,
    );
    twin.dispose();
  });
});
