import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import { Rng, Tensor } from '@sparsekit/core';
import { backendRef, type ModelConfig, TransformerLM } from '@sparsekit/models';
import { LlamaTwin } from '@sparsekit/models/tfjs';
import { describe, expect, it } from 'vitest';
import type { RouteResult } from '../route-result.js';
import type { RouterName } from '../router-table.js';
import { type TrainableGateSettings, trainableGate } from './gates.js';

const [T, H, E] = [24, 12, 4];

/** Per-token expert -> weight maps of a backend routing. */
function byExpert(r: RouteResult): Map<number, number>[] {
  return Array.from({ length: r.tokens }, (_, t) => {
    const m = new Map<number, number>();
    for (let j = 0; j < r.k; j++) {
      const e = r.experts[t * r.k + j]!;
      if (e >= 0) m.set(e, (m.get(e) ?? 0) + r.weights[t * r.k + j]!);
    }
    return m;
  });
}

const GATES: [RouterName, TrainableGateSettings][] = [
  ['top-k', { numExperts: E, k: 2 }],
  ['top-k', { numExperts: E, k: 2, capacity: { factor: 1, convention: 'switch' } }],
  ['switch', { numExperts: E }],
  ['expert-choice', { numExperts: E }],
  ['hash', { numExperts: E }],
  ['relu-rms', { numExperts: E }],
  ['comet', { numExperts: E, k: 2, width: H, gamma: 4 }],
];

describe('trainable gates (tfjs) choose and weigh as the backend routers', () => {
  it.each(GATES)(
    '%s %j: mask and weights equal the backend router; gradients reach the gate',
    (name, settings) => {
      const rng = new Rng(3);
      const gate = trainableGate(tf, name, settings);
      const x = rng.normalArray(T * H);
      const gw = tf.variable(tf.tensor2d(rng.normalArray(H * E, 0, 0.5), [H, E]));
      const out = tf.tidy(() => {
        const r = gate.route({
          tf,
          mm: tf.matMul,
          x: tf.tensor2d(x, [T, H]),
          gate: gw,
          training: false,
          block: 0,
        });
        return { mask: r.mask.arraySync(), weights: r.weights.arraySync(), logits: r.logits.dataSync() };
      });
      // The backend router on the same hidden states and logits.
      const router = gate.toRouter() as unknown as { route(i: unknown): RouteResult };
      const ref = byExpert(
        router.route({
          hidden: new Tensor('f32', [T, H], x),
          logits: new Tensor('f32', [T, E], Float32Array.from(out.logits)),
          block: 0,
        }),
      );
      for (let t = 0; t < T; t++)
        for (let e = 0; e < E; e++) {
          expect(out.mask[t]![e]).toBe(ref[t]!.has(e) ? 1 : 0);
          expect(out.weights[t]![e]).toBeCloseTo(ref[t]!.get(e) ?? 0, 5);
        }
      // Gradients of a weighted sum of the combine weights (hash weights are constants: nothing to train).
      if (name === 'hash') {
        gw.dispose();
        return;
      }
      const probe = tf.tensor2d(rng.normalArray(T * E), [T, E]);
      const { grads } = tf.variableGrads(
        () =>
          tf.sum(
            tf.mul(
              gate.route({ tf, mm: tf.matMul, x: tf.tensor2d(x, [T, H]), gate: gw, training: true, block: 0 })
                .weights,
              probe,
            ),
          ) as tf.Scalar,
      );
      const norms = Object.fromEntries(Object.entries(grads).map(([k, g]) => [k, tf.norm(g).dataSync()[0]!]));
      for (const n of Object.values(norms)) expect(Number.isFinite(n)).toBe(true);
      const own = gate.variables();
      if (name === 'comet') for (const v of own) expect(norms[v.name]).toBeGreaterThan(0);
      else expect(norms[gw.name]).toBeGreaterThan(0);
      if (name === 'relu-rms') expect(norms[own[0]!.name]).toBeGreaterThan(0);
      tf.dispose([gw, probe, ...Object.values(grads), ...own]);
    },
  );

  it('switch jitters its input only in training; top-k adds noise only in training', () => {
    const rng = new Rng(4);
    const x = tf.tensor2d(rng.normalArray(T * H), [T, H]);
    const gw = tf.variable(tf.tensor2d(rng.normalArray(H * E), [H, E]));
    for (const [name, settings] of [
      ['switch', { numExperts: E, jitterEps: 0.1 }],
      ['top-k', { numExperts: E, k: 2, noiseStd: 1 }],
    ] as const) {
      const g = trainableGate(tf, name, settings);
      const logits = (training: boolean) =>
        g.route({ tf, mm: tf.matMul, x, gate: gw, training, block: 0 }).logits.dataSync();
      expect(Array.from(logits(false))).toEqual(Array.from(logits(false)));
      expect(Array.from(logits(true))).not.toEqual(Array.from(logits(false)));
    }
    tf.dispose([x, gw]);
  });

  it('refuses unknown gates and bad settings', () => {
    expect(() => trainableGate(tf, 'fancy' as RouterName, { numExperts: E })).toThrow(/must be one of/);
    expect(() => trainableGate(tf, 'switch', { numExperts: E, jitterEps: 2 })).toThrow(/jitterEps/);
    expect(() => trainableGate(tf, 'top-k', { numExperts: E, noiseStd: -1 })).toThrow(/noiseStd/);
    expect(() => trainableGate(tf, 'comet', { numExperts: E })).toThrow(/width/);
  });
});

const config: ModelConfig = {
  family: 'llama',
  vocabSize: 48,
  hiddenSize: 16,
  numLayers: 2,
  numHeads: 2,
  numKvHeads: 1,
  headDim: 8,
  intermediateSize: 8,
  maxPositions: 16,
  norm: 'rmsnorm',
  normEps: 1e-5,
  preNorm: true,
  positions: 'rotary',
  positionOffset: 0,
  ropeTheta: 10000,
  activation: 'silu',
  gatedMlp: true,
  attentionBias: false,
  mlpBias: false,
  tieEmbeddings: true,
  wordEmbedDim: 16,
  moe: { numExperts: E, expertsPerToken: 2 },
};

describe('a tfjs MoE twin trains with each gate, and its runtime model routes the same', () => {
  it.each([
    ['switch', { numExperts: E }],
    ['expert-choice', { numExperts: E }],
    ['hash', { numExperts: E }],
    ['relu-rms', { numExperts: E, locality: 0.01, chunkSparsity: 0.01 }],
    ['comet', { numExperts: E, k: 2, width: 16, entropy: 0.01 }],
  ] as [RouterName, TrainableGateSettings][])('%s', async (name, settings) => {
    const twin = LlamaTwin.init(tf, config, 7);
    twin.setGates((block) => trainableGate(tf, name, { ...settings, seed: block }));
    const rng = new Rng(9);
    const ids = Array.from({ length: 2 * 12 }, () => rng.int(config.vocabSize));
    const inputs = tf.tensor2d(ids, [2, 12], 'int32');
    // The task: predict the token itself (learnable in a few steps).
    const optimizer = tf.train.adam(0.02);
    const losses: number[] = [];
    twin.training = true;
    for (let step = 0; step < 25; step++) {
      const cost = optimizer.minimize(
        () => twin.lossTerms(inputs, inputs, { loadBalance: 0.01, routerZ: 0.001 }).total,
        true,
        twin.variables(),
      );
      losses.push(cost!.dataSync()[0]!);
      cost!.dispose();
    }
    twin.training = false;
    expect(losses.at(-1)!).toBeLessThan(losses[0]! - 0.3);
    // The gate's own regulariser shows up in the loss terms when it has one.
    const terms: { gate: number | null } = { gate: null };
    tf.tidy(() => {
      const t = twin.lossTerms(inputs, inputs);
      terms.gate = t.gate === undefined ? null : t.gate.dataSync()[0]!;
    });
    if (name === 'relu-rms' || name === 'comet') expect(terms.gate).toBeGreaterThan(0);
    else expect(terms.gate).toBeNull();
    // The runtime model with the gates' routers computes the twin's logits.
    const model = new TransformerLM(config, twin.toParams(backendRef()), backendRef());
    const want = tf.tidy(() => Float32Array.from(twin.logits(inputs).dataSync()));
    const got = model.logits(new Tensor('i32', [2, 12], Int32Array.from(ids))).data;
    expect(got).toAllClose(want, { atol: 2e-4, rtol: 1e-4 });
    tf.dispose([inputs]);
    twin.dispose();
    optimizer.dispose();
  });
});
