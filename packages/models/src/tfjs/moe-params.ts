// A runtime mixture-of-experts slot (`MoeMlp`: router gate, `TopKRouter`, gated experts) to the
// twin's `TwinMoe` and back. The twin holds its experts side by side (see moe-mlp.ts); the runtime
// holds one Linear per projection under the module tree's names (`layers.N.mlp.gate`,
// `layers.N.mlp.experts.E.gate_proj`, ...), which the Hugging Face Mixtral layout maps to
// `block_sparse_moe.gate` and `block_sparse_moe.experts.E.w1/w2/w3` on save.

import { transposeValues } from '@sparsekit/core';
import type * as TF from '@tensorflow/tfjs-core';
import type { ModelConfig } from '../config.js';
import { UnsupportedModelError } from '../errors.js';
import { denseMatrix, Linear } from '../runtime/linear.js';
import { type GatedMlp, type MoeMlp, TopKRouter } from '../runtime/mlp.js';
import type { BackendRef } from '../runtime/steps.js';
import { moeExperts, type TwinExpert, type TwinMoe } from './moe-mlp.js';

type Tfjs = typeof TF;

/** A layer's weight as the twin holds it, [in, out]; a bias is refused (the twin has none). */
function inOut(l: Linear): Float32Array {
  if (l.bias !== undefined)
    throw new UnsupportedModelError(`bias of ${l.name}`, 'the tfjs twin trains MoE layers without biases');
  return transposeValues(l.getWeight().data, l.outFeatures, l.inFeatures);
}

function gatedExpert(name: string, e: MoeMlp['experts'][number] | undefined): GatedMlp {
  if (e?.kind !== 'gated')
    throw new UnsupportedModelError(`${e?.kind} expert (${name})`, 'the tfjs twin trains gated experts only');
  return e;
}

/** The twin of a runtime MoE slot named `name` (`layers.N.mlp`); copies. */
export function moeFromParams(tf: Tfjs, name: string, mlp: MoeMlp): TwinMoe {
  const router = mlp.router;
  if (!(router instanceof TopKRouter))
    throw new UnsupportedModelError(
      `router ${router.constructor.name} (${name}.router)`,
      "the tfjs twin trains Mixtral's softmax top-k router (TopKRouter) only",
    );
  const E = mlp.experts.length;
  const experts = mlp.experts.map((e, i) => gatedExpert(`${name}.experts.${i}`, e));
  const H = mlp.gate.inFeatures;
  const I = experts[0]!.gate.outFeatures;
  if (router.numExperts !== E || mlp.gate.outFeatures !== E || experts.some((e) => e.gate.outFeatures !== I))
    throw new UnsupportedModelError(
      `MoE slot ${name}`,
      `the router, its gate (${mlp.gate.outFeatures} logits) and the ${E} experts must agree, each expert of one width`,
    );
  // Expert e's [hidden, I] block goes to columns e * I .. of [hidden, E * I].
  const sideBySide = (pick: (e: GatedMlp) => Linear) => {
    const all = new Float32Array(H * E * I);
    experts.forEach((e, i) => {
      const w = inOut(pick(e));
      for (let h = 0; h < H; h++) all.set(w.subarray(h * I, (h + 1) * I), h * E * I + i * I);
    });
    return tf.variable(tf.tensor2d(all, [H, E * I]));
  };
  const down = new Float32Array(E * I * H);
  experts.forEach((e, i) => {
    down.set(inOut(e.down), i * I * H);
  });
  const variable = (l: Linear) => tf.variable(tf.tensor2d(inOut(l), [l.inFeatures, l.outFeatures]));
  const shared =
    mlp.sharedExpert === undefined ? undefined : gatedExpert(`${name}.shared_expert`, mlp.sharedExpert);
  return {
    gate: variable(mlp.gate),
    expertGate: sideBySide((e) => e.gate),
    expertUp: sideBySide((e) => e.up),
    expertDown: tf.variable(tf.tensor2d(down, [E * I, H])),
    k: router.k,
    normalize: router.normalize,
    ...(shared === undefined
      ? {}
      : { shared: { gate: variable(shared.gate), up: variable(shared.up), down: variable(shared.down) } }),
  };
}

/** A runtime MoE slot named `name` (`layers.N.mlp`) holding copies of the twin's weights (dense f32). */
export function moeToParams(moe: TwinMoe, name: string, kernels: BackendRef): MoeMlp {
  const E = moeExperts(moe);
  const [H, EI] = moe.expertGate.shape as [number, number];
  const I = EI / E;
  const read = (v: TF.Variable) => v.dataSync() as Float32Array;
  /** A Linear from [in, out] values. */
  const linear = (layer: string, values: Float32Array, inF: number, outF: number) =>
    new Linear(layer, denseMatrix(transposeValues(values, inF, outF), outF, inF), undefined, kernels);
  const fromVariable = (layer: string, v: TF.Variable) => {
    const [inF, outF] = v.shape as [number, number];
    return linear(layer, read(v), inF, outF);
  };
  const gate = read(moe.expertGate);
  const up = read(moe.expertUp);
  const down = read(moe.expertDown);
  const column = (all: Float32Array, e: number) => {
    const w = new Float32Array(H * I);
    for (let h = 0; h < H; h++) w.set(all.subarray(h * EI + e * I, h * EI + (e + 1) * I), h * I);
    return w;
  };
  const expert = (prefix: string, e: TwinExpert): GatedMlp => ({
    kind: 'gated',
    gate: fromVariable(`${prefix}.gate_proj`, e.gate),
    up: fromVariable(`${prefix}.up_proj`, e.up),
    down: fromVariable(`${prefix}.down_proj`, e.down),
  });
  return {
    kind: 'moe',
    gate: fromVariable(`${name}.gate`, moe.gate),
    router: moe.router?.toRouter() ?? new TopKRouter(E, moe.k, moe.normalize),
    experts: Array.from({ length: E }, (_, e) => ({
      kind: 'gated' as const,
      gate: linear(`${name}.experts.${e}.gate_proj`, column(gate, e), H, I),
      up: linear(`${name}.experts.${e}.up_proj`, column(up, e), H, I),
      down: linear(`${name}.experts.${e}.down_proj`, down.slice(e * I * H, (e + 1) * I * H), I, H),
    })),
    ...(moe.shared === undefined ? {} : { sharedExpert: expert(`${name}.shared_expert`, moe.shared) }),
  };
}

/**
 * Fresh mixture weights for `config.moe`: `normal(shape, std)` for the router gate and the experts'
 * gate and up projections, `normal(shape, outStd)` for their down projections.
 */
export function initMoe(
  config: ModelConfig,
  normal: (shape: number[], std: number) => TF.Variable,
  std: number,
  outStd: number,
): TwinMoe {
  const { numExperts: E, expertsPerToken: k } = config.moe!;
  const H = config.hiddenSize;
  const I = config.intermediateSize;
  return {
    gate: normal([H, E], std),
    expertGate: normal([H, E * I], std),
    expertUp: normal([H, E * I], std),
    expertDown: normal([E * I, H], outStd),
    k,
    normalize: true,
  };
}
