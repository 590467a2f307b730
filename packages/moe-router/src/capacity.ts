// Expert capacity (how many token slots an expert takes) under the conventions of the references,
// and dropping in GShard order: every token's first choice, in token order, before any second choice.
import { InvalidArgumentError } from '@sparsekit/core';

/**
 * How a capacity factor becomes slots per expert (T tokens, E experts, k choices per token):
 * - 'switch': floor(factor * T * k / E) (the Switch Transformer paper's "tokens per expert x capacity
 *   factor"; the reference fixtures' convention); factor > 0.
 * - 'tutel': Tutel's `extract_critical`, with spe = ceil(T / E): factor > 0: k * int(factor * spe)
 *   (fixed, padded); factor = 0: the most slots any expert was given (dropless); factor < 0:
 *   min(that, k * int(-factor * spe)); then rounded up to a multiple of `alignment`.
 * - 'deepspeed': DeepSpeed's `_capacity`: max(ceil(T / E * factor * k), minCapacity); factor > 0.
 */
export type CapacityConvention = 'switch' | 'tutel' | 'deepspeed';

export interface CapacityFactor {
  factor: number;
  /** Default 'switch'. */
  convention?: CapacityConvention;
  /** A floor on the capacity (DeepSpeed's `min_capacity`): default 4 for 'deepspeed', else 0. */
  minCapacity?: number;
  /** Round the capacity up to a multiple of this (Tutel's `alignment`); default 1. */
  alignment?: number;
}

/**
 * A capacity: a factor under a convention, a fixed number of slots per expert (HF Switch's
 * `expert_capacity`), or 'dropless' (no bound: every chosen slot is kept, Megablocks' dMoE).
 */
export type Capacity = CapacityFactor | { perExpert: number } | 'dropless';

export interface CapacityShape {
  tokens: number;
  numExperts: number;
  /** Choices per token (1 for expert choice, where experts choose). */
  k: number;
  /** The most slots any expert was chosen for (used by Tutel's factor <= 0). */
  needed: number;
}

/** Checks a capacity option (typed errors for NaN, a negative count, a factor the convention refuses). */
export function checkCapacity(capacity: Capacity): Capacity {
  if (capacity === 'dropless') return capacity;
  if (typeof capacity !== 'object' || capacity === null)
    throw new InvalidArgumentError('capacity', capacity, "must be 'dropless', { perExpert } or { factor }");
  if ('perExpert' in capacity) {
    if (!Number.isInteger(capacity.perExpert) || capacity.perExpert < 0)
      throw new InvalidArgumentError(
        'capacity.perExpert',
        capacity.perExpert,
        'must be a non-negative integer',
      );
    return capacity;
  }
  const convention = capacity.convention ?? 'switch';
  if (!['switch', 'tutel', 'deepspeed'].includes(convention))
    throw new InvalidArgumentError(
      'capacity.convention',
      convention,
      "must be 'switch', 'tutel' or 'deepspeed'",
    );
  const { factor } = capacity;
  if (!Number.isFinite(factor))
    throw new InvalidArgumentError('capacity.factor', factor, 'must be a finite number');
  if (convention !== 'tutel' && factor <= 0)
    throw new InvalidArgumentError(
      'capacity.factor',
      factor,
      `must be > 0 under the '${convention}' convention (only 'tutel' gives 0 and negative factors a meaning)`,
    );
  const { minCapacity, alignment } = capacity;
  if (minCapacity !== undefined && !(Number.isInteger(minCapacity) && minCapacity >= 0))
    throw new InvalidArgumentError('capacity.minCapacity', minCapacity, 'must be a non-negative integer');
  if (alignment !== undefined && !(Number.isInteger(alignment) && alignment >= 1))
    throw new InvalidArgumentError('capacity.alignment', alignment, 'must be a positive integer');
  return capacity;
}

/** Slots per expert for `capacity`, or undefined when it is dropless. */
export function expertCapacity(capacity: Capacity, shape: CapacityShape): number | undefined {
  checkCapacity(capacity);
  if (capacity === 'dropless') return undefined;
  if ('perExpert' in capacity) return capacity.perExpert;
  const { tokens: T, numExperts: E, k, needed } = shape;
  const convention = capacity.convention ?? 'switch';
  const { factor } = capacity;
  let slots: number;
  if (convention === 'switch') slots = Math.floor((factor * T * k) / E);
  // DeepSpeed's top2gating passes cf * 2: (T / E) * (cf * k), in that order.
  else if (convention === 'deepspeed') slots = Math.ceil((T / E) * (factor * k));
  else {
    const spe = Math.ceil(T / E);
    if (factor > 0) slots = k * Math.trunc(factor * spe);
    else if (factor === 0) slots = needed;
    else slots = Math.min(needed, k * Math.trunc(-factor * spe));
  }
  slots = Math.max(slots, capacity.minCapacity ?? (convention === 'deepspeed' ? 4 : 0));
  const alignment = capacity.alignment ?? 1;
  const remainder = slots % alignment;
  return remainder === 0 ? slots : slots + alignment - remainder;
}

/** The most slots any expert is chosen for (-1 slots ignored). */
export function neededCapacity(chosen: ArrayLike<number>, numExperts: number): number {
  const counts = new Int32Array(numExperts);
  for (let i = 0; i < chosen.length; i++) if (chosen[i]! >= 0) counts[chosen[i]!]!++;
  return counts.reduce((a, b) => Math.max(a, b), 0);
}

export interface Dropped {
  experts: Int32Array;
  weights: Float32Array;
  dropped: number;
}

/**
 * Keeps at most `capacity` slots per expert, in GShard order: choice 0 of tokens 0..T-1, then
 * choice 1 of every token, and so on, so a second choice never takes a slot before every first
 * choice is placed. A dropped slot gets expert -1 and weight 0; undefined capacity keeps every slot.
 */
export function dropOverCapacity(
  chosen: Int32Array,
  weights: ArrayLike<number>,
  k: number,
  numExperts: number,
  capacity: number | undefined,
): Dropped {
  const experts = chosen.slice();
  const kept = Float32Array.from(weights);
  if (capacity === undefined) return { experts, weights: kept, dropped: 0 };
  const tokens = chosen.length / k;
  const counts = new Int32Array(numExperts);
  let dropped = 0;
  for (let j = 0; j < k; j++)
    for (let t = 0; t < tokens; t++) {
      const slot = t * k + j;
      const e = chosen[slot]!;
      if (e < 0) continue;
      if (counts[e]! < capacity) counts[e]!++;
      else {
        experts[slot] = -1;
        kept[slot] = 0;
        dropped++;
      }
    }
  return { experts, weights: kept, dropped };
}
