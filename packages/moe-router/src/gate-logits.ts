// The logits a router routes on: the model's gate output, or (when the router holds the gate
// weight) its own float64 projection of the hidden states, optionally jittered, plus training noise.
import { InvalidArgumentError, type Rng, type RouterInput } from '@sparsekit/core';
import { checkGateWeight } from './validate.js';

/**
 * Training-time noise. 'gaussian': logits + N(0, std^2) (Shazeer et al.'s noisy top-k; with
 * `noiseWeight` [E, width] the std per expert is softplus(x . noiseWeight_e), their learned form);
 * it changes both the choice and the weights (`std` scales either form; default 1). 'gumbel': logits + Gumbel(0, 1) for the choice only,
 * the weights stay the clean softmax (DeepSpeed's noisy_gate_policy 'RSample'). 'jitter': the
 * hidden states are multiplied by U(1 - eps, 1 + eps) before the gate (Switch, HF `router_jitter_noise`,
 * DeepSpeed 'Jitter'); it needs the router to hold `gateWeight`.
 */
export type RouterNoise =
  | { kind: 'gaussian'; std?: number; noiseWeight?: Float32Array | Float64Array }
  | { kind: 'gumbel' }
  | { kind: 'jitter'; eps?: number };

export interface GateOptions {
  /**
   * [numExperts, width] the gate weight (rows = experts, as a model's gate Linear stores it). When
   * given, the router projects the hidden states itself in float64 (an fp32-or-better router, as
   * Switch asks) and ignores the model's logits; input jitter needs it.
   */
  gateWeight?: Float32Array | Float64Array;
  /** Noise, applied only while `training` is true. */
  noise?: RouterNoise;
}

export function checkNoise(noise: RouterNoise | undefined, numExperts: number, hasGate: boolean): void {
  if (noise === undefined) return;
  if (noise.kind === 'gaussian') {
    const std = noise.std ?? 1;
    if (!(Number.isFinite(std) && std >= 0))
      throw new InvalidArgumentError('noise.std', std, 'must be a finite number >= 0');
    if (noise.noiseWeight !== undefined) checkGateWeight(noise.noiseWeight, numExperts);
  } else if (noise.kind === 'jitter') {
    const eps = noise.eps ?? 0.01;
    if (!(Number.isFinite(eps) && eps >= 0 && eps < 1))
      throw new InvalidArgumentError('noise.eps', eps, 'must be a finite number in [0, 1)');
    if (!hasGate && eps > 0)
      throw new InvalidArgumentError(
        'noise',
        'jitter',
        'input jitter changes the gate input, so the router needs `gateWeight` (or use eps 0, gaussian or gumbel noise)',
      );
  } else if (noise.kind !== 'gumbel')
    throw new InvalidArgumentError(
      'noise.kind',
      (noise as { kind: unknown }).kind,
      "must be 'gaussian', 'gumbel' or 'jitter'",
    );
}

/** log(1 + e^v), without overflow. */
function softplus(v: number): number {
  return v > 30 ? v : Math.log1p(Math.exp(v));
}

function project(
  x: ArrayLike<number>,
  tokens: number,
  width: number,
  w: ArrayLike<number>,
  E: number,
): Float64Array {
  const out = new Float64Array(tokens * E);
  for (let t = 0; t < tokens; t++)
    for (let e = 0; e < E; e++) {
      let s = 0;
      for (let i = 0; i < width; i++) s += x[t * width + i]! * w[e * width + i]!;
      out[t * E + e] = s;
    }
  return out;
}

export interface GateLogits {
  /** The logits the weights come from. */
  logits: Float64Array;
  /** The logits the choice is made on (differs from `logits` under gumbel noise). */
  selection: Float64Array;
}

/** The router's logits for `input`, with noise when training. */
export function gateLogits(
  input: RouterInput,
  tokens: number,
  numExperts: number,
  options: GateOptions,
  training: boolean,
  rng: Rng,
): GateLogits {
  const E = numExperts;
  const noise = training ? options.noise : undefined;
  let logits: Float64Array;
  if (options.gateWeight === undefined) logits = Float64Array.from(input.logits.data);
  else {
    const width = checkGateWeight(options.gateWeight, E, input.hidden.shape[1]);
    let x: ArrayLike<number> = input.hidden.data;
    if (noise?.kind === 'jitter') {
      const eps = noise.eps ?? 0.01;
      const jittered = new Float64Array(x.length);
      for (let i = 0; i < x.length; i++) jittered[i] = x[i]! * rng.uniform(1 - eps, 1 + eps);
      x = jittered;
    }
    logits = project(x, tokens, width, options.gateWeight, E);
  }
  if (noise?.kind === 'gaussian') {
    const std =
      noise.noiseWeight === undefined
        ? undefined
        : project(input.hidden.data, tokens, input.hidden.shape[1]!, noise.noiseWeight, E);
    for (let i = 0; i < logits.length; i++) {
      const s = std === undefined ? (noise.std ?? 1) : softplus(std[i]!) * (noise.std ?? 1);
      logits[i]! += s * rng.normal();
    }
  }
  if (noise?.kind === 'gumbel') {
    const selection = new Float64Array(logits.length);
    for (let i = 0; i < logits.length; i++) {
      const u = Math.min(Math.max(rng.uniform(), 1e-12), 1 - 1e-12);
      selection[i] = logits[i]! - Math.log(-Math.log(u));
    }
    return { logits, selection };
  }
  return { logits, selection: logits };
}

/** Rows `kept` of a [numExperts, width] per-expert matrix. */
export function keepExpertRows<A extends Float32Array | Float64Array>(
  rows: A,
  numExperts: number,
  kept: readonly number[],
): A {
  const width = rows.length / numExperts;
  const out = new (rows.constructor as new (n: number) => A)(kept.length * width);
  kept.forEach((e, i) => {
    out.set(rows.subarray(e * width, (e + 1) * width), i * width);
  });
  return out;
}

/** The gate options of a router that keeps experts `kept`: gate and noise weights lose the other rows. */
export function keepGateExperts<O extends GateOptions>(
  options: O,
  numExperts: number,
  kept: readonly number[],
): O {
  const noise = options.noise;
  return {
    ...options,
    ...(options.gateWeight === undefined
      ? {}
      : { gateWeight: keepExpertRows(options.gateWeight, numExperts, kept) }),
    ...(noise?.kind === 'gaussian' && noise.noiseWeight !== undefined
      ? { noise: { ...noise, noiseWeight: keepExpertRows(noise.noiseWeight, numExperts, kept) } }
      : {}),
  };
}
