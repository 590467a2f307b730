// TensorFlow Model Optimization's `PruneLowMagnitude` wrapper for tfjs-layers: a layer that holds
// the original layer (sharing its weights) and a keep-mask per prunable weight. Its order in `call`
// is TFMOT's: in training, count the step, check the step callback ran, recompute the masks when
// the schedule says so; always multiply the weights by their masks; then run the inner layer.
import { InvalidArgumentError } from '@sparsekit/core';
import { measuredSparsity } from '@sparsekit/sparse-formats';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { checkNmPattern } from '../masks.js';
import {
  ConstantSparsity,
  masksDue,
  type PruningSchedule,
  type PruningScheduleConfig,
  scheduleFromConfig,
} from '../schedules.js';
import { trainingKeepMask } from '../training-masks.js';
import {
  checkNmTraining,
  DenseShadow,
  type NmTrainingOptions,
  patternAt,
  pruneFactorAt,
} from './nm-training.js';
import { isPrunable, PruningStepMissingError, prunableWeights, weightBaseName } from './prunable.js';

type LayerVariable = tfl.LayerVariable;
type Layer = tfl.layers.Layer;
type Kwargs = Record<string, unknown>;

export interface PruneOptions {
  /** Default: ConstantSparsity(0.5, 0), TFMOT's. */
  pruningSchedule?: PruningSchedule;
  /** Pool |w| over [rows, cols] blocks before thresholding (2-D weights; default [1, 1]). */
  blockSize?: readonly [number, number];
  /** 'avg' (default) or 'max'. */
  blockPooling?: 'avg' | 'max';
  /**
   * N:M instead of a schedule: [n, m] keeps n of every m consecutive inputs (Sparsekit's
   * convention; TFMOT's `sparsity_m_by_n=(2, 4)` counts zeros, so its (m, n) is [n - m, n] here).
   * The mask is computed once, at the first training step, as TFMOT does.
   */
  nm?: readonly [number, number];
  /**
   * With `nm`: train the N:M pattern dynamically on a dense shadow (SR-STE, mask decay, structure
   * decay; see `NmTrainingOptions`) instead of TFMOT's fixed mask.
   */
  nmTraining?: NmTrainingOptions;
}

const serializationMap = () => tf.serialization.SerializationMap.getMap().classNameMap;

/** One per prunable weight of the inner layer. */
interface Pruned {
  weight: LayerVariable;
  mask: LayerVariable;
  threshold: number;
  /** Dynamic N:M training only. */
  shadow?: DenseShadow;
}

export class PruneLowMagnitude extends tfl.layers.Layer {
  static readonly className = 'PruneLowMagnitude';
  readonly layer: Layer;
  readonly pruningSchedule: PruningSchedule;
  readonly blockSize: readonly [number, number];
  readonly blockPooling: 'avg' | 'max';
  readonly nm: readonly [number, number] | undefined;
  readonly nmTraining: NmTrainingOptions | undefined;
  /** TFMOT's `pruning_step`: -1 until `updatePruningStep()` sets it to 0, then one more per training call. */
  pruningStep = -1;
  private pruned: Pruned[] = [];
  private innerInputShape: tfl.Shape | tfl.Shape[] | undefined;

  constructor(args: { layer: Layer } & PruneOptions & { name?: string }) {
    const { layer } = args;
    if (!(layer instanceof tfl.layers.Layer))
      throw new InvalidArgumentError('layer', String(layer), 'must be a tfjs-layers Layer');
    const batchInputShape = (layer as unknown as { batchInputShape?: tfl.Shape }).batchInputShape;
    super({
      name: args.name ?? `prune_low_magnitude_${layer.name}`,
      trainable: layer.trainable,
      ...(batchInputShape ? { batchInputShape } : {}),
    });
    if (!isPrunable(layer)) prunableWeights(layer); // throws the error naming the layer
    const pooling = args.blockPooling ?? 'avg';
    if (pooling !== 'avg' && pooling !== 'max')
      throw new InvalidArgumentError('blockPooling', pooling, "must be 'avg' or 'max'");
    if (args.nm !== undefined) checkNmPattern(args.nm[0], args.nm[1], 'nm');
    this.layer = layer;
    this.pruningSchedule = args.pruningSchedule ?? new ConstantSparsity(0.5, 0);
    this.blockSize = args.blockSize ?? [1, 1];
    this.blockPooling = pooling;
    this.nm = args.nm;
    if (args.nmTraining !== undefined) {
      if (args.nm === undefined)
        throw new InvalidArgumentError(
          'nmTraining',
          args.nmTraining.method,
          'needs an N:M pattern (nm: [n, m])',
        );
      checkNmTraining(args.nmTraining);
    }
    this.nmTraining = args.nmTraining;
    this.supportsMasking = layer.supportsMasking;
  }

  override build(inputShape: tfl.Shape | tfl.Shape[]): void {
    this.innerInputShape = inputShape;
    if (!this.layer.built) {
      this.layer.build(inputShape);
      this.layer.built = true;
    }
    this.pruned = prunableWeights(this.layer).map((weight, i) => {
      if (
        this.nm === undefined &&
        (this.blockSize[0] !== 1 || this.blockSize[1] !== 1) &&
        weight.shape.length !== 2
      )
        throw new InvalidArgumentError(
          'blockSize',
          `[${this.blockSize.join(', ')}]`,
          `block sparsity needs 2-D weights; ${this.layer.name}'s ${weightBaseName(weight)} is [${weight.shape.join(', ')}]`,
        );
      const mask = this.addWeight(
        `mask_${i}`,
        weight.shape,
        'float32',
        tfl.initializers.ones(),
        undefined,
        false,
      );
      return {
        weight,
        mask,
        threshold: 0,
        ...(this.nmTraining === undefined ? {} : { shadow: new DenseShadow() }),
      };
    });
    this.built = true;
  }

  override get trainableWeights(): LayerVariable[] {
    return this.layer.trainableWeights;
  }
  override set trainableWeights(_: LayerVariable[]) {}

  override get nonTrainableWeights(): LayerVariable[] {
    return [...this.layer.nonTrainableWeights, ...this.pruned.map((p) => p.mask)];
  }
  override set nonTrainableWeights(_: LayerVariable[]) {}

  override computeOutputShape(inputShape: tfl.Shape | tfl.Shape[]): tfl.Shape | tfl.Shape[] {
    return this.layer.computeOutputShape(inputShape);
  }

  override computeMask(inputs: tf.Tensor | tf.Tensor[], mask?: tf.Tensor | tf.Tensor[]) {
    return this.layer.computeMask(inputs, mask);
  }

  override call(inputs: tf.Tensor | tf.Tensor[], kwargs: Kwargs): tf.Tensor | tf.Tensor[] {
    if (kwargs.training === true) {
      this.pruningStep++;
      if (this.pruningStep < 1) throw new PruningStepMissingError(this.name);
      if (this.nmTraining !== undefined) {
        this.syncShadows(true);
        return this.layer.call(inputs, kwargs);
      }
      if (masksDue(this.pruningStep, this.pruningSchedule, this.nm)) this.updateMasks();
    }
    this.applyMasks();
    return this.layer.call(inputs, kwargs);
  }

  /** Recompute every mask from the current weights at the schedule's sparsity for this step. */
  updateMasks(step = this.pruningStep): void {
    const sparsity = this.pruningSchedule.at(step).sparsity;
    for (const p of this.pruned) {
      const shape = p.weight.shape as number[];
      const { keep, threshold } = trainingKeepMask(p.weight.read().dataSync(), shape, sparsity, {
        blockSize: this.blockSize,
        blockPooling: this.blockPooling,
        ...(this.nm === undefined ? {} : { nm: this.nm }),
      });
      p.threshold = threshold;
      tf.tidy(() => {
        p.mask.write(tf.tensor(keep, shape));
      });
    }
  }

  /** The keep-masks (1 kept, 0 pruned), one per pruned weight, in `prunedWeights()` order. */
  getMasks(): Float32Array[] {
    return this.pruned.map((p) => Float32Array.from(p.mask.read().dataSync() as Float32Array));
  }

  /** The weights this wrapper prunes. */
  prunedWeights(): LayerVariable[] {
    return this.pruned.map((p) => p.weight);
  }

  /** Set the keep-masks from outside (with a `FixedMask` schedule they stay), and apply them. */
  setMasks(masks: readonly ArrayLike<number>[]): void {
    if (masks.length !== this.pruned.length)
      throw new InvalidArgumentError(
        'masks',
        masks.length,
        `must hold one mask per pruned weight (${this.pruned.length})`,
      );
    this.pruned.forEach((p, i) => {
      const shape = p.weight.shape as number[];
      if (masks[i]!.length !== p.weight.read().size)
        throw new InvalidArgumentError(
          `masks[${i}]`,
          masks[i]!.length,
          `must match ${weightBaseName(p.weight)} [${shape.join(', ')}]`,
        );
      tf.tidy(() => {
        p.mask.write(tf.tensor(Float32Array.from(masks[i]!), shape));
      });
    });
    this.applyMasks();
  }

  /** weight := weight * mask, for every pruned weight (dynamic N:M: the forward weights rebuilt from the shadow). */
  applyMasks(): void {
    if (this.nmTraining !== undefined) {
      if (this.pruningStep >= 1) this.syncShadows(false);
      return;
    }
    for (const p of this.pruned)
      tf.tidy(() => {
        p.weight.write(tf.mul(p.weight.read(), p.mask.read()));
      });
  }

  /** The dense weights (dynamic N:M: the pruned ones with the values they keep in the shadow). */
  denseWeights(): Float32Array[] {
    return this.pruned.map((p) =>
      p.shadow === undefined
        ? Float32Array.from(p.weight.read().dataSync() as Float32Array)
        : p.shadow.dense(p.weight),
    );
  }

  /** The final weights: masks applied, and with dynamic N:M the pruned weights set to exactly 0. */
  finishMasks(): void {
    this.applyMasks();
    for (const p of this.pruned) p.shadow?.finish(p.weight);
  }

  /** Dynamic N:M: rebuild the dense weights, recompute the masks, write the forward weights. */
  private syncShadows(step: boolean): void {
    const o = this.nmTraining!;
    const pattern = patternAt(o, this.nm!, this.pruningStep);
    const factor = pruneFactorAt(o, this.pruningStep);
    const decay = step && o.method === 'srste' ? o.learningRate! * (o.lambda ?? 2e-4) : 0;
    for (const p of this.pruned) {
      p.shadow!.sync(p.weight, pattern, factor, decay);
      const keep = p.shadow!.keep!;
      tf.tidy(() => {
        p.mask.write(tf.tensor(keep, p.weight.shape as number[]));
      });
    }
  }

  /** Per pruned weight: its name, the mask's sparsity (zeros / size) and the threshold last used. */
  summaries(): Array<{ weight: string; sparsity: number; threshold: number }> {
    return this.pruned.map((p) => ({
      weight: weightBaseName(p.weight),
      sparsity: measuredSparsity(p.mask.read().dataSync()),
      threshold: p.threshold,
    }));
  }

  override getConfig(): tf.serialization.ConfigDict {
    return {
      ...super.getConfig(),
      layer: { className: this.layer.getClassName(), config: this.layer.getConfig() },
      pruningSchedule: this.pruningSchedule.getConfig() as unknown as tf.serialization.ConfigDict,
      blockSize: [...this.blockSize],
      blockPooling: this.blockPooling,
      ...(this.nm === undefined ? {} : { nm: [...this.nm] }),
      ...(this.nmTraining === undefined
        ? {}
        : { nmTraining: this.nmTraining as unknown as tf.serialization.ConfigDict }),
      ...(this.innerInputShape === undefined ? {} : { innerInputShape: this.innerInputShape }),
    };
  }

  static override fromConfig<T extends tf.serialization.Serializable>(
    _cls: tf.serialization.SerializableConstructor<T>,
    config: tf.serialization.ConfigDict,
  ): T {
    const inner = config.layer as { className: string; config: tf.serialization.ConfigDict };
    const entry = serializationMap()[inner.className];
    if (entry === undefined)
      throw new InvalidArgumentError(
        'layer className',
        inner.className,
        'is not a registered tfjs-layers class',
      );
    const [cls, fromConfig] = entry;
    const layer = fromConfig(cls, inner.config) as unknown as Layer;
    // Build the inner layer in its own name scope, as it was built before it was wrapped, so its
    // weights get the names they were saved under.
    const shape = config.innerInputShape as unknown as tfl.Shape | tfl.Shape[] | undefined;
    if (shape !== undefined) {
      const shapes = (Array.isArray(shape[0]) ? shape : [shape]) as tfl.Shape[];
      const inputs = shapes.map((batchShape) => tfl.input({ batchShape }));
      layer.apply(inputs.length === 1 ? inputs[0]! : inputs);
    }
    return new PruneLowMagnitude({
      layer,
      name: config.name as string,
      pruningSchedule: scheduleFromConfig(config.pruningSchedule as unknown as PruningScheduleConfig),
      blockSize: config.blockSize as unknown as [number, number],
      blockPooling: config.blockPooling as 'avg' | 'max',
      ...(config.nm === undefined ? {} : { nm: config.nm as unknown as [number, number] }),
      ...(config.nmTraining === undefined
        ? {}
        : { nmTraining: config.nmTraining as unknown as NmTrainingOptions }),
    }) as unknown as T;
  }
}
tf.serialization.registerClass(PruneLowMagnitude);
