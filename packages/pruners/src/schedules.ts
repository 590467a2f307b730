// Pruning schedules with TensorFlow Model Optimization's semantics (pruning_schedule.py): a schedule
// says, for a training step, whether the mask is recomputed at that step and the sparsity to reach.
// Arithmetic is float32, as TFMOT's tensors, so the sparsities match its values bit for bit.
import { InvalidArgumentError } from '@sparsekit/core';

export interface PruningDecision {
  /** Whether the mask is recomputed at this step. */
  prune: boolean;
  /** The fraction of weights to zero (float32). */
  sparsity: number;
}

export interface PruningScheduleConfig {
  className: 'ConstantSparsity' | 'PolynomialDecay' | 'FixedMask';
  config: Record<string, number>;
}

/** A pruning schedule: `at(step)` gives the decision for a training step (TFMOT's `__call__`). */
export interface PruningSchedule {
  at(step: number): PruningDecision;
  getConfig(): PruningScheduleConfig;
}

const f32 = Math.fround;

function checkSteps(beginStep: number, endStep: number, frequency: number, allowForever: boolean): void {
  const integer = (name: string, v: number) => {
    if (!Number.isSafeInteger(v)) throw new InvalidArgumentError(name, v, 'must be an integer');
  };
  integer('beginStep', beginStep);
  integer('endStep', endStep);
  integer('frequency', frequency);
  if (beginStep < 0) throw new InvalidArgumentError('beginStep', beginStep, 'should be >= 0');
  if (!allowForever && endStep === -1)
    throw new InvalidArgumentError('endStep', endStep, 'cannot be -1 (this schedule needs an end)');
  if (endStep !== -1) {
    if (endStep < 0) throw new InvalidArgumentError('endStep', endStep, 'can be -1 or >= 0');
    if (endStep < beginStep)
      throw new InvalidArgumentError('endStep', endStep, `should be >= beginStep (${beginStep}) if not -1`);
  }
  if (frequency <= 0) throw new InvalidArgumentError('frequency', frequency, 'should be > 0');
}

function checkFraction(name: string, v: number): void {
  if (!(v >= 0 && v < 1)) throw new InvalidArgumentError(name, v, 'must be in range [0, 1)');
}

/** TFMOT's rule: step >= begin and (step <= end or end < 0) and (step - begin) % frequency == 0. */
export function shouldPruneAt(step: number, beginStep: number, endStep: number, frequency: number): boolean {
  const inRange = step >= beginStep && (step <= endStep || endStep < 0);
  const turn = (((step - beginStep) % frequency) + frequency) % frequency === 0; // floormod
  return inRange && turn;
}

/** A constant target from `beginStep` on, recomputing the mask every `frequency` steps until `endStep` (-1: forever). */
export class ConstantSparsity implements PruningSchedule {
  constructor(
    readonly targetSparsity: number,
    readonly beginStep: number,
    readonly endStep = -1,
    readonly frequency = 100,
  ) {
    checkSteps(beginStep, endStep, frequency, true);
    checkFraction('targetSparsity', targetSparsity);
  }

  at(step: number): PruningDecision {
    return {
      prune: shouldPruneAt(step, this.beginStep, this.endStep, this.frequency),
      sparsity: f32(this.targetSparsity),
    };
  }

  getConfig(): PruningScheduleConfig {
    const { targetSparsity, beginStep, endStep, frequency } = this;
    return { className: 'ConstantSparsity', config: { targetSparsity, beginStep, endStep, frequency } };
  }
}

/**
 * Sparsity rising from `initialSparsity` to `finalSparsity` between `beginStep` and `endStep`:
 * s = final + (initial - final) (1 - p)^power, p = (step - begin) / (end - begin) clipped to [0, 1].
 * With power 3 this is Zhu and Gupta's gradual pruning ("To prune, or not to prune", t0 = begin,
 * n dt = end - begin, dt = frequency).
 */
export class PolynomialDecay implements PruningSchedule {
  constructor(
    readonly initialSparsity: number,
    readonly finalSparsity: number,
    readonly beginStep: number,
    readonly endStep: number,
    readonly power = 3,
    readonly frequency = 100,
  ) {
    checkSteps(beginStep, endStep, frequency, false);
    checkFraction('initialSparsity', initialSparsity);
    checkFraction('finalSparsity', finalSparsity);
    if (!Number.isFinite(power)) throw new InvalidArgumentError('power', power, 'must be finite');
    if (endStep === beginStep)
      throw new InvalidArgumentError(
        'endStep',
        endStep,
        `must be > beginStep (${beginStep}): the decay needs a span`,
      );
  }

  at(step: number): PruningDecision {
    const p = Math.min(1, Math.max(0, f32(f32(step - this.beginStep) / f32(this.endStep - this.beginStep))));
    const decay = f32(f32(1 - p) ** f32(this.power));
    const sparsity = f32(
      f32(f32(this.initialSparsity - this.finalSparsity) * decay) + f32(this.finalSparsity),
    );
    return { prune: shouldPruneAt(step, this.beginStep, this.endStep, this.frequency), sparsity };
  }

  getConfig(): PruningScheduleConfig {
    const { initialSparsity, finalSparsity, beginStep, endStep, power, frequency } = this;
    return {
      className: 'PolynomialDecay',
      config: { initialSparsity, finalSparsity, beginStep, endStep, power, frequency },
    };
  }
}

/**
 * Never recomputes the mask: the masks stay as set from outside (`PruneLowMagnitude.setMasks`),
 * for methods that choose them themselves (iterative magnitude pruning, sparse model soups). Not a
 * TFMOT schedule.
 */
export class FixedMask implements PruningSchedule {
  at(): PruningDecision {
    return { prune: false, sparsity: 0 };
  }

  getConfig(): PruningScheduleConfig {
    return { className: 'FixedMask', config: {} };
  }
}

/**
 * Whether pruning during training recomputes its masks at `step`: at the schedule's steps, or, for a
 * fixed N:M pattern, once at the first training step (TFMOT's m_by_n rule).
 */
export function masksDue(step: number, schedule: PruningSchedule, nm?: readonly [number, number]): boolean {
  return nm === undefined ? schedule.at(step).prune : step === 1;
}

/** A schedule from its `getConfig()`. */
export function scheduleFromConfig(config: PruningScheduleConfig): PruningSchedule {
  const c = config.config;
  if (config.className === 'ConstantSparsity')
    return new ConstantSparsity(c.targetSparsity!, c.beginStep!, c.endStep, c.frequency);
  if (config.className === 'FixedMask') return new FixedMask();
  if (config.className === 'PolynomialDecay')
    return new PolynomialDecay(
      c.initialSparsity!,
      c.finalSparsity!,
      c.beginStep!,
      c.endStep!,
      c.power,
      c.frequency,
    );
  throw new InvalidArgumentError(
    'schedule className',
    (config as { className: string }).className,
    'is not a schedule',
  );
}
