import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import { Tensor } from '@sparsekit/core';
import { beforeAll, describe, expect, it } from 'vitest';
import { UnsupportedModelError } from '../errors.js';
import { hfTinyDir, hfTinyExpected } from '../hf/hf-tiny.test-util.js';
import { loadHfModel } from '../hf/load.js';
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

  it('refuses a model it has no counterpart for (a mixture-of-experts MLP), naming the module', async () => {
    const { model, config } = await loadHfModel(dir);
    const b = model.params.blocks[1]!;
    const experts = [b.mlp as GatedMlp];
    b.mlp = { kind: 'moe', gate: experts[0]!.gate, router: new TopKRouter(1, 1), experts };
    expect(() => LlamaTwin.fromParams(tf, config, model.params)).toThrow(/moe MLP \(layers\.1\.mlp\)/);
    expect(() => LlamaTwin.fromParams(tf, config, model.params)).toThrow(UnsupportedModelError);
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
});
