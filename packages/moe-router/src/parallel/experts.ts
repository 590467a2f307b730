// The experts the expert-parallel simulation runs: small gated (SwiGLU) MLPs in plain float32, and
// the same mixture run on one thread, the reference the simulation is checked against.
import { InvalidArgumentError, type Routing, ShapeMismatchError } from '@sparsekit/core';
import { positiveInteger } from '../validate.js';

/** down(silu(gate x) * up x); weights row-major as a model's Linear stores them ([out, in]). */
export interface GatedExpert {
  /** [inner, width] */
  gate: Float32Array;
  /** [inner, width] */
  up: Float32Array;
  /** [width, inner] */
  down: Float32Array;
  inner: number;
}

/** Checks the experts' shapes against `width`. */
export function checkExperts(experts: readonly GatedExpert[], width: number): void {
  positiveInteger('width', width);
  experts.forEach((e, i) => {
    positiveInteger(`expert ${i} inner`, e.inner);
    for (const [name, w] of [
      ['gate', e.gate],
      ['up', e.up],
      ['down', e.down],
    ] as const)
      if (w.length !== e.inner * width)
        throw new ShapeMismatchError([e.inner * width], [w.length], `expert ${i} ${name} weight`);
  });
}

/** y += w * expert(x) for one row x [width] (float32 accumulation, the workers' arithmetic). */
export function addExpertRow(
  expert: GatedExpert,
  x: Float32Array,
  xOffset: number,
  width: number,
  weight: number,
  y: Float32Array,
  yOffset: number,
  scratch: Float32Array,
): void {
  const { gate, up, down, inner } = expert;
  for (let c = 0; c < inner; c++) {
    let g = 0;
    let u = 0;
    const row = c * width;
    for (let i = 0; i < width; i++) {
      const v = x[xOffset + i]!;
      g += gate[row + i]! * v;
      u += up[row + i]! * v;
    }
    scratch[c] = (g / (1 + Math.exp(-g))) * u;
  }
  for (let o = 0; o < width; o++) {
    let s = 0;
    const row = o * inner;
    for (let c = 0; c < inner; c++) s += down[row + c]! * scratch[c]!;
    y[yOffset + o]! += weight * s;
  }
}

/**
 * The mixture on one thread: out[t] = sum over t's kept slots of weight * expert(hidden[t]) for
 * hidden [tokens, width]; a token with no kept slot gets 0 (it rides the residual).
 */
export function runExpertsLocally(
  routing: Routing,
  hidden: Float32Array,
  width: number,
  experts: readonly GatedExpert[],
): Float32Array {
  checkExperts(experts, width);
  const { k, experts: ids, weights } = routing;
  const tokens = ids.length / k;
  if (hidden.length !== tokens * width)
    throw new ShapeMismatchError([tokens, width], [hidden.length / width, width], 'hidden');
  const out = new Float32Array(tokens * width);
  const scratch = new Float32Array(Math.max(1, ...experts.map((e) => e.inner)));
  for (let slot = 0; slot < ids.length; slot++) {
    const e = ids[slot]!;
    if (e < 0) continue;
    const expert = experts[e];
    if (expert === undefined)
      throw new InvalidArgumentError('routed expert', e, `must be -1 (dropped) or in [0, ${experts.length})`);
    const t = Math.floor(slot / k);
    addExpertRow(expert, hidden, t * width, width, weights[slot]!, out, t * width, scratch);
  }
  return out;
}
