// The pruning methods as data: what each takes, whether it needs calibration, what it gives. Recipe
// validation, `runRecipe`, the CLI's flags and a server's API schema all derive from this table.

/** What a recipe field holds (enough to build a form, a flag or a JSON schema from). */
export type FieldKind =
  | 'fraction' // a number in [0, 1)
  | 'pattern' // "N:M"
  | 'blocks' // "RxC": whole blocks of R output rows x C inputs
  | 'layers' // { include?: regex[], exclude?: regex[] }
  | 'overrides' // [{ match: regex, sparsity | pattern | skip }]
  | 'object'; // the method's own options, described field by field

export interface MethodField {
  name: string;
  kind: FieldKind;
  description: string;
  /** For kind 'object': its fields and what they hold. */
  options?: Readonly<Record<string, string>>;
}

export interface MethodSpec {
  name: string;
  summary: string;
  /** The recipe fields it takes besides `method` and `calibration`. */
  fields: readonly MethodField[];
  /**
   * 'always': calibration batches are required; 'never': none are used; 'for-errors': only to
   * measure each layer's reconstruction error (magnitude).
   */
  calibration: 'always' | 'never' | 'for-errors';
  /** 'sparse': zeros in place (packable into a sparse format); 'smaller': fewer dense parameters. */
  gives: 'sparse' | 'smaller';
  /** Whether it takes `sparsity` and `pattern` as alternatives (else `sparsity` only, or neither). */
  target: 'sparsity-or-pattern' | 'sparsity' | 'none';
  /** The paper or reference code it follows. */
  reference: string;
}

const SPARSITY: MethodField = {
  name: 'sparsity',
  kind: 'fraction',
  description: 'fraction of the weights to remove',
};
const PATTERN: MethodField = { name: 'pattern', kind: 'pattern', description: 'N kept of every M inputs' };
const BLOCKS: MethodField = {
  name: 'blocks',
  kind: 'blocks',
  description: 'prune whole blocks of R output rows x C inputs ("1x8", "8x1"), with sparsity; packs as BSR',
};
const LAYERS: MethodField = {
  name: 'layers',
  kind: 'layers',
  description: 'regular expressions over layer names: a layer must match one include and no exclude',
};
const OVERRIDES: MethodField = {
  name: 'overrides',
  kind: 'overrides',
  description: 'first match wins: another sparsity or pattern for those layers, or skip them',
};
const OWL: MethodField = {
  name: 'owl',
  kind: 'object',
  description: 'OWL layer-wise sparsity from outlier ratios (true, or { m, lambda }; unstructured only)',
  options: {
    m: 'outlier threshold, times the mean (default 5)',
    lambda: 'spread around the target (default 0.08)',
  },
};

export const METHOD_TABLE = [
  {
    name: 'magnitude',
    summary: 'smallest |w| per layer (or per row)',
    fields: [
      SPARSITY,
      PATTERN,
      BLOCKS,
      LAYERS,
      OVERRIDES,
      {
        name: 'magnitude',
        kind: 'object',
        description: "magnitude's comparison group",
        options: { scope: "'layer' (default) or 'row'" },
      },
    ],
    calibration: 'for-errors',
    gives: 'sparse',
    target: 'sparsity-or-pattern',
    reference: 'the magnitude baseline of the Wanda and SparseGPT repositories',
  },
  {
    name: 'wanda',
    summary: '|w| x input norm, per output row (Wanda)',
    fields: [SPARSITY, PATTERN, BLOCKS, LAYERS, OVERRIDES, OWL],
    calibration: 'always',
    gives: 'sparse',
    target: 'sparsity-or-pattern',
    reference: 'Sun et al. 2023, locuslab/wanda',
  },
  {
    name: 'sparsegpt',
    summary: 'OBS updates from the inverse Hessian (SparseGPT)',
    fields: [
      SPARSITY,
      PATTERN,
      BLOCKS,
      LAYERS,
      OVERRIDES,
      OWL,
      {
        name: 'sparsegpt',
        kind: 'object',
        description: "SparseGPT's solver",
        options: {
          blockSize: 'columns per lazy batch (default 128)',
          percDamp: 'Hessian dampening (default 0.01)',
        },
      },
    ],
    calibration: 'always',
    gives: 'sparse',
    target: 'sparsity-or-pattern',
    reference: 'Frantar & Alistarh 2023, IST-DASLab/sparsegpt',
  },
  {
    name: 'slicegpt',
    summary: 'delete a fraction of the hidden width after a PCA rotation (SliceGPT)',
    fields: [{ name: 'sparsity', kind: 'fraction', description: 'fraction of the hidden width to delete' }],
    calibration: 'always',
    gives: 'smaller',
    target: 'sparsity',
    reference: 'Ashkboos et al. 2024, microsoft/TransformerCompression',
  },
  {
    name: 'structured',
    summary: 'delete MLP channels and attention heads scored by their activations',
    fields: [
      {
        name: 'structured',
        kind: 'object',
        description: 'fractions of every block to delete',
        options: { mlpChannels: 'fraction of MLP channels', heads: 'fraction of attention heads' },
      },
    ],
    calibration: 'always',
    gives: 'smaller',
    target: 'none',
    reference: 'activation-norm channel and head scores (as LLM-Pruner / FLAP baselines)',
  },
  {
    name: 'global-magnitude',
    summary: 'one magnitude threshold over all selected layers',
    fields: [
      SPARSITY,
      LAYERS,
      {
        name: 'global',
        kind: 'object',
        description: 'global allocation',
        options: { minKeep: 'smallest fraction of its weights a layer keeps (default 0.01)' },
      },
    ],
    calibration: 'never',
    gives: 'sparse',
    target: 'sparsity',
    reference: 'global magnitude pruning (Han et al. 2015; Blalock et al. 2020)',
  },
  {
    name: 'random',
    summary: 'random weights, uniform or ERK layer densities',
    fields: [
      SPARSITY,
      LAYERS,
      {
        name: 'random',
        kind: 'object',
        description: 'the random draw',
        options: { distribution: "'uniform' (default) or 'erk'", seed: 'seed of the draw (default 0)' },
      },
    ],
    calibration: 'never',
    gives: 'sparse',
    target: 'sparsity',
    reference: 'random pruning baselines; ERK from Evci et al. 2020 (RigL)',
  },
] as const satisfies readonly MethodSpec[];

/** Every method a recipe can name. */
export type RecipeMethod = (typeof METHOD_TABLE)[number]['name'];

/** The method names, in the table's order. */
export const METHOD_NAMES: readonly RecipeMethod[] = METHOD_TABLE.map((m) => m.name);

/** The table's entry for `name`, or undefined. */
export function methodSpec(name: string): MethodSpec | undefined {
  return METHOD_TABLE.find((m) => m.name === name);
}
