// TFMOT's model-level API on tfjs-layers: prune_low_magnitude, strip_pruning and the two callbacks.
import { InvalidArgumentError } from '@sparsekit/core';
import * as tfl from '@tensorflow/tfjs-layers';
import { isPrunable } from './prunable.js';
import { rebuildModel } from './rebuild.js';
import { PruneLowMagnitude, type PruneOptions } from './wrapper.js';

type Layer = tfl.layers.Layer;

/**
 * Wrap the prunable layers of a Sequential or functional model (Dense, Conv*, DepthwiseConv2D,
 * SeparableConv pointwise kernels, Embedding, RNN kernels, and any layer with
 * `getPrunableWeights()`), or one layer, or a list of layers, in `PruneLowMagnitude`. A model comes
 * back as a new, uncompiled model sharing the original's weights (compile it again, as with TFMOT);
 * layers without prunable weights are kept as they are; a layer with trainable weights this does not
 * know how to prune is refused, naming it.
 */
export function pruneLowMagnitude(target: tfl.LayersModel, options?: PruneOptions): tfl.LayersModel;
export function pruneLowMagnitude(target: Layer, options?: PruneOptions): PruneLowMagnitude;
export function pruneLowMagnitude(target: Layer[], options?: PruneOptions): PruneLowMagnitude[];
export function pruneLowMagnitude(
  target: tfl.LayersModel | Layer | Layer[],
  options: PruneOptions = {},
): tfl.LayersModel | PruneLowMagnitude | PruneLowMagnitude[] {
  const wrap = (layer: Layer): PruneLowMagnitude =>
    layer instanceof PruneLowMagnitude ? layer : new PruneLowMagnitude({ layer, ...options });
  if (Array.isArray(target)) return target.map(wrap);
  if (target instanceof tfl.LayersModel)
    return rebuildModel(target, (layer) => {
      if (layer instanceof PruneLowMagnitude || isPrunable(layer)) return wrap(layer);
      if (layer.trainableWeights.length > 0 && !NEVER_PRUNED.has(layer.getClassName()))
        throw new InvalidArgumentError(
          'layer',
          `${layer.name} (${layer.getClassName()})`,
          'has trainable weights but is not prunable: give it getPrunableWeights() (the PrunableLayer interface), or prune a list of the layers you want',
        );
      return layer;
    });
  if (target instanceof tfl.layers.Layer) return wrap(target);
  throw new InvalidArgumentError(
    'pruneLowMagnitude target',
    String(target),
    'must be a tfjs-layers Sequential or functional model, a layer, or a list of layers',
  );
}

/** Layers with weights that TFMOT keeps dense (normalisation). */
const NEVER_PRUNED = new Set(['BatchNormalization', 'LayerNormalization']);

/** Every `PruneLowMagnitude` in a model, nested models included. */
export function prunedLayers(model: tfl.LayersModel): PruneLowMagnitude[] {
  return model.layers.flatMap((l) =>
    l instanceof PruneLowMagnitude ? [l] : l instanceof tfl.LayersModel ? prunedLayers(l) : [],
  );
}

/** The values of every pruned weight of a model, wrapper by wrapper (`prunedLayers` order). */
export function prunedWeightValues(model: tfl.LayersModel): Float32Array[] {
  return prunedLayers(model).flatMap((w) =>
    w.prunedWeights().map((v) => v.read().dataSync() as Float32Array),
  );
}

/** The keep-masks of every pruned weight of a model, in the same order. */
export function modelMasks(model: tfl.LayersModel): Float32Array[] {
  return prunedLayers(model).flatMap((w) => w.getMasks());
}

/** Set (and apply) the keep-masks of every pruned weight of a model, in the same order. */
export function setModelMasks(model: tfl.LayersModel, keeps: readonly ArrayLike<number>[]): void {
  const wrappers = prunedLayers(model);
  const count = wrappers.reduce((n, w) => n + w.prunedWeights().length, 0);
  if (keeps.length !== count)
    throw new InvalidArgumentError('masks', keeps.length, `must hold one mask per pruned weight (${count})`);
  let at = 0;
  for (const w of wrappers) {
    const n = w.prunedWeights().length;
    w.setMasks(keeps.slice(at, at + n));
    at += n;
  }
}

/**
 * The model without its pruning wrappers: a new, uncompiled model whose layers are the original
 * layers, with their masks applied once more (so the weights hold exact zeros).
 */
export function stripPruning(model: tfl.LayersModel): tfl.LayersModel {
  if (!(model instanceof tfl.LayersModel))
    throw new InvalidArgumentError('stripPruning model', String(model), 'must be a tfjs-layers LayersModel');
  for (const w of prunedLayers(model)) w.finishMasks();
  return rebuildModel(model, (layer) => (layer instanceof PruneLowMagnitude ? layer.layer : layer));
}

/**
 * TFMOT's `UpdatePruningStep`: at the start of training, every wrapper's step goes from -1 to 0
 * (a model trained before keeps its count); at the end of every epoch the masks are applied, so the
 * weights are exactly sparse after the last update. Required in `fit` when the model is pruned.
 */
export class UpdatePruningStep extends tfl.Callback {
  override async onTrainBegin(): Promise<void> {
    const layers = prunedLayers(this.model);
    if (layers.length > 0 && layers[0]!.pruningStep === -1) for (const l of layers) l.pruningStep = 0;
  }

  override async onEpochEnd(): Promise<void> {
    for (const l of prunedLayers(this.model)) l.applyMasks();
  }
}

export function updatePruningStep(): UpdatePruningStep {
  return new UpdatePruningStep();
}

export interface PruningSummary {
  epoch: number;
  /** The wrapper's pruning step. */
  step: number;
  /** `<wrapper>/<weight>/sparsity`, as TFMOT names its summaries. */
  name: string;
  layer: string;
  weight: string;
  sparsity: number;
  threshold: number;
}

export interface PruningSummariesOptions {
  /** Append one JSON line per pruned weight and epoch to this file (Node). */
  logFile?: string;
  /** Or receive the entries. */
  onSummary?: (entries: PruningSummary[]) => void | Promise<void>;
}

/**
 * TFMOT's `PruningSummaries`: each pruned weight's mask sparsity and threshold, per epoch. Unlike
 * TFMOT, which logs at the start of each epoch (and so never logs the last one), entries are taken at
 * the end of each epoch, after the masks are applied.
 */
export class PruningSummaries extends tfl.Callback {
  constructor(private readonly options: PruningSummariesOptions) {
    super();
    if (options.logFile === undefined && options.onSummary === undefined)
      throw new InvalidArgumentError(
        'pruningSummaries',
        'options',
        'needs a logFile or an onSummary callback',
      );
    if (options.logFile !== undefined && (typeof options.logFile !== 'string' || options.logFile === ''))
      throw new InvalidArgumentError('logFile', options.logFile, 'must be a non-empty path');
  }

  override async onEpochEnd(epoch: number): Promise<void> {
    const entries = prunedLayers(this.model).flatMap((l) =>
      l.summaries().map((s) => ({
        epoch,
        step: l.pruningStep,
        name: `${l.name}/${s.weight}/sparsity`,
        layer: l.name,
        weight: s.weight,
        sparsity: s.sparsity,
        threshold: s.threshold,
      })),
    );
    if (this.options.logFile !== undefined) {
      const { appendFile } = await import('node:fs/promises');
      await appendFile(this.options.logFile, entries.map((e) => `${JSON.stringify(e)}\n`).join(''));
    }
    await this.options.onSummary?.(entries);
  }
}

export function pruningSummaries(options: PruningSummariesOptions): PruningSummaries {
  return new PruningSummaries(options);
}
