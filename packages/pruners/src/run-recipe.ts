// One entry point for every pruning method: a recipe in, one report type out.
import {
  type BlockwiseLM,
  InvalidArgumentError,
  type NarrowableLM,
  type ProgressOptions,
  type SliceableLM,
  type Tensor,
} from '@sparsekit/core';
import type { Backend, HasPackableLayers } from '@sparsekit/sparse-formats';
import { type MethodSpec, methodSpec, type RecipeMethod } from './method-table.js';
import { pruneAllocation } from './methods/global.js';
import { type SlicePointReport, sliceGpt } from './methods/slicegpt.js';
import { pruneStructured, type StructuredReport } from './methods/structured.js';
import type { OwlAllocation } from './owl.js';
import { packLayers } from './pack.js';
import { type LayerReport, type Pattern, pruneModel } from './prune-model.js';
import {
  checkRecipeLayers,
  type Recipe,
  recipeLayerFilter,
  recipeOptions,
  validateRecipe,
} from './recipe.js';

/** What `runRecipe` can run on: a blockwise model; SliceGPT and structured need their seams too. */
export type RecipeModel = BlockwiseLM &
  Partial<SliceableLM> &
  Partial<NarrowableLM> &
  Partial<HasPackableLayers>;

export interface RunRecipeOptions extends ProgressOptions {
  /** Runs SparseGPT's solver and the Hessians' X^T X (default: plain loops). */
  backend?: Backend;
  /** Measure each pruned layer's reconstruction error on the calibration tokens (default true). */
  reconstructionError?: boolean;
  /** Pack every pruned layer into the sparse format of its own pattern (N:M, BSR for blocks, CSR or bitmask). */
  pack?: boolean;
}

/** The report of any method: the shared fields, and the section of the method's kind. */
export interface RecipeReport {
  method: RecipeMethod;
  /** 'sparse': zeros in place (`layers`); 'smaller': fewer dense parameters (`slice` or `structured`). */
  gives: MethodSpec['gives'];
  /** The recipe as run (its calibration: the batches given). */
  recipe: Recipe;
  /** The default target of sparse methods (layers may differ: overrides, OWL, allocations). */
  pattern?: Pattern;
  calibrationTokens: number;
  /** Parameters before and after, when the model counts them. */
  parameters?: { before: number; after: number };
  /** Per pruned layer (sparse methods): pattern, measured sparsity, PQ Index, error, time. */
  layers: LayerReport[];
  /** Zeros over weights across the pruned layers (0 for 'smaller' methods). */
  sparsity: number;
  /** Whether the pruned layers were packed into sparse formats. */
  packed: boolean;
  owl?: OwlAllocation;
  /** SliceGPT: the widths and what each stream point kept. */
  slice?: { sparsity: number; originalWidth: number; slicedWidth: number; points: SlicePointReport[] };
  /** Structured: the fractions asked for, what each block lost, and the block shape after. */
  structured?: StructuredReport & { mlpChannels: number; heads: number };
  seconds: number;
}

type Run = (
  model: RecipeModel,
  batches: readonly Tensor<'i32'>[],
  recipe: Recipe,
  options: RunRecipeOptions,
) => Promise<
  Omit<
    RecipeReport,
    'method' | 'gives' | 'recipe' | 'calibrationTokens' | 'parameters' | 'packed' | 'seconds'
  >
>;

const sparse: Run = async (model, batches, recipe, options) => {
  const report = await pruneModel(model, batches, {
    ...recipeOptions(recipe),
    ...(options.reconstructionError === undefined
      ? {}
      : { reconstructionError: options.reconstructionError }),
    ...(options.backend === undefined ? {} : { backend: options.backend }),
    ...progress(options),
  });
  return {
    pattern: report.pattern,
    layers: report.layers,
    sparsity: report.sparsity,
    ...(report.owl === undefined ? {} : { owl: report.owl }),
  };
};

const allocation: Run = async (model, _batches, recipe, options) => {
  const report = pruneAllocation(model, {
    method: recipe.method as 'global-magnitude' | 'random',
    sparsity: recipe.sparsity!,
    ...(recipe.global?.minKeep === undefined ? {} : { minKeep: recipe.global.minKeep }),
    ...(recipe.random?.distribution === undefined ? {} : { distribution: recipe.random.distribution }),
    ...(recipe.random?.seed === undefined ? {} : { seed: recipe.random.seed }),
    filter: recipeLayerFilter(recipe),
    ...progress(options),
  });
  return { pattern: report.pattern, layers: report.layers, sparsity: report.sparsity };
};

/** Each method's run; typed by the table, so a method without one does not compile. */
const RUNS: Record<RecipeMethod, Run> = {
  magnitude: sparse,
  wanda: sparse,
  sparsegpt: sparse,
  'global-magnitude': allocation,
  random: allocation,
  slicegpt: async (model, batches, recipe, options) => {
    requireSeam(model, ['foldNorms', 'rotateStream', 'parameterCount'], 'slicegpt', 'SliceableLM');
    const r = await sliceGpt(model as SliceableLM, batches, {
      sparsity: recipe.sparsity!,
      ...progress(options),
    });
    return {
      layers: [],
      sparsity: 0,
      slice: {
        sparsity: r.sparsity,
        originalWidth: r.originalWidth,
        slicedWidth: r.slicedWidth,
        points: r.points,
      },
    };
  },
  structured: async (model, batches, recipe, options) => {
    requireSeam(model, ['removeMlpChannels', 'removeHeads'], 'structured', 'NarrowableLM');
    const fractions = {
      mlpChannels: recipe.structured?.mlpChannels ?? 0,
      heads: recipe.structured?.heads ?? 0,
    };
    const r = pruneStructured(model, batches, { ...fractions, narrow: true, ...progress(options) });
    return {
      layers: [],
      sparsity: 0,
      structured: {
        ...fractions,
        blocks: r.blocks,
        ...(r.blockShape === undefined ? {} : { blockShape: r.blockShape }),
      },
    };
  },
};

/**
 * Run a pruning recipe on `model` in place: validated (its layer patterns against the model's layers
 * too), the method's calibration needs checked, run, and (with `pack`) each pruned layer packed. A
 * method that fails leaves the model as it was. The recipe is validated here whatever its source
 * (a parsed file, a server request's JSON). `calibration` holds the batches ([batch, seq] token
 * ids; eval-harness's `calibrationWindows` draws them as the references do); a method that takes
 * none ignores them.
 */
export async function runRecipe(
  model: RecipeModel,
  calibration: readonly Tensor<'i32'>[],
  recipeInput: Recipe,
  options: RunRecipeOptions = {},
): Promise<RecipeReport> {
  const start = performance.now();
  const recipe = validateRecipe(recipeInput);
  const spec = methodSpec(recipe.method)!;
  checkRecipeLayers(
    recipe,
    model.linearLayers().map((l) => l.name),
  );
  const errors = options.reconstructionError ?? true;
  const needs = needsCalibration(recipe, { reconstructionError: errors });
  if (needs && calibration.length === 0)
    throw new InvalidArgumentError(
      'calibration',
      0,
      `${recipe.method} needs calibration batches${spec.calibration === 'for-errors' ? ' to measure reconstruction errors (or set reconstructionError: false)' : ''}`,
    );
  if (options.pack === true && spec.gives !== 'sparse')
    throw new InvalidArgumentError(
      'pack',
      true,
      `${recipe.method} gives a smaller dense model; there is nothing to pack`,
    );
  const batches = needs ? calibration : [];
  const before = model.parameterCount?.();
  const result = await RUNS[recipe.method](model, batches, recipe, options);
  if (options.pack === true) {
    const patterns = new Map(result.layers.map((l) => [l.name, l.pattern]));
    packLayers(model as HasPackableLayers, (layer) => {
      const p = patterns.get(layer.name);
      return p === undefined
        ? undefined
        : 'n' in p
          ? { n: p.n, m: p.m }
          : p.block === undefined
            ? {}
            : { block: p.block };
    });
  }
  const after = model.parameterCount?.();
  let tokens = 0;
  for (const b of batches) tokens += b.size;
  const seqLen = batches[0]?.shape.at(-1);
  return {
    method: recipe.method,
    gives: spec.gives,
    // The recipe as run: the calibration it had (the caller may have drawn other windows than it says).
    recipe:
      batches.length === 0
        ? recipe
        : {
            ...recipe,
            calibration: {
              ...recipe.calibration,
              samples: batches.reduce((s, b) => s + (b.shape[0] ?? 1), 0),
              ...(seqLen === undefined ? {} : { seqLen }),
            },
          },
    ...result,
    calibrationTokens: tokens,
    ...(before === undefined || after === undefined ? {} : { parameters: { before, after } }),
    packed: options.pack === true,
    seconds: (performance.now() - start) / 1000,
  };
}

/** Whether running `recipe` uses calibration batches (with reconstruction errors on or off). */
export function needsCalibration(recipe: Recipe, options: { reconstructionError?: boolean } = {}): boolean {
  const c = methodSpec(recipe.method)?.calibration;
  return c === 'always' || (c === 'for-errors' && (options.reconstructionError ?? true));
}

function requireSeam(model: RecipeModel, methods: string[], method: string, seam: string): void {
  const missing = methods.filter(
    (m) => typeof (model as unknown as Record<string, unknown>)[m] !== 'function',
  );
  if (missing.length > 0)
    throw new InvalidArgumentError(
      'model',
      `a model without ${missing.join(', ')}`,
      `${method} needs a ${seam}`,
    );
}

function progress(options: ProgressOptions): ProgressOptions {
  return {
    ...(options.onProgress === undefined ? {} : { onProgress: options.onProgress }),
    ...(options.signal === undefined ? {} : { signal: options.signal }),
  };
}
