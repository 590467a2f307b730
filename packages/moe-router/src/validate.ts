// Checks shared by every router: the shapes of a router's input, finite logits, integer options.
import { InvalidArgumentError, NonFiniteError, type RouterInput, ShapeMismatchError } from '@sparsekit/core';

/** A positive integer option, or a typed error naming it. */
export function positiveInteger(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 1)
    throw new InvalidArgumentError(name, value, 'must be a positive integer');
  return value;
}

/** A finite number option within [min, max], or a typed error naming it. */
export function finiteIn(name: string, value: number, min: number, max: number): number {
  if (!Number.isFinite(value) || value < min || value > max)
    throw new InvalidArgumentError(name, value, `must be a finite number in [${min}, ${max}]`);
  return value;
}

/** k experts per token out of `numExperts`. */
export function expertsPerToken(k: number, numExperts: number): number {
  if (!Number.isInteger(k) || k < 1 || k > numExperts)
    throw new InvalidArgumentError('experts per token (k)', k, `must be an integer in [1, ${numExperts}]`);
  return k;
}

/** Throws a NonFiniteError at the first NaN or Inf. */
export function assertFiniteValues(values: ArrayLike<number>, what: string): void {
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (!Number.isFinite(v)) throw new NonFiniteError(what, i, v);
  }
}

/**
 * Checks [tokens, numExperts] logits (a 2-d tensor, or a flat array whose length is a multiple of
 * numExperts) and returns the token count.
 */
export function logitsTokens(
  logits: ArrayLike<number>,
  numExperts: number,
  shape?: readonly number[],
): number {
  if (shape !== undefined && (shape.length !== 2 || shape[1] !== numExperts))
    throw new ShapeMismatchError([-1, numExperts], shape, 'router logits');
  if (logits.length % numExperts !== 0)
    throw new ShapeMismatchError([-1, numExperts], [logits.length], 'router logits');
  assertFiniteValues(logits, 'router logits');
  return logits.length / numExperts;
}

/** The token count of a router input, after checking logits [T, E] and hidden [T, width]. */
export function inputTokens(input: RouterInput, numExperts: number): number {
  const tokens = logitsTokens(input.logits.data, numExperts, input.logits.shape);
  const h = input.hidden.shape;
  if (h.length !== 2 || h[0] !== tokens)
    throw new ShapeMismatchError([tokens, -1], h, 'router hidden states');
  return tokens;
}

/** A gate weight [numExperts, width] (rows = experts, as a model's gate Linear stores it). */
export function checkGateWeight(weight: ArrayLike<number>, numExperts: number, width?: number): number {
  if (weight.length === 0 || weight.length % numExperts !== 0)
    throw new ShapeMismatchError([numExperts, -1], [weight.length], 'gate weight');
  const w = weight.length / numExperts;
  if (width !== undefined && w !== width)
    throw new ShapeMismatchError([numExperts, width], [numExperts, w], 'gate weight');
  assertFiniteValues(weight, 'gate weight');
  return w;
}
