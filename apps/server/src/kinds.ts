// The job kinds as data: each kind's parameters (a JSON schema the API validates against, built from
// the packages' method tables where they have one), and the `sparsekit` command line a worker runs
// for it. Parameters become `--flag=value` arguments of an argument array (never a shell line), so
// a value can never be read as another flag; file parameters resolve inside the server's data root.

import { METHOD_NAMES, METHOD_TABLE } from '@sparsekit/pruners';
import { SAE_ARCHITECTURES } from '@sparsekit/sae';
import { FORMAT_NAMES } from '@sparsekit/sparse-formats';
import type { JobKind } from './store.js';

/** A JSON schema (the subset these tables use). */
export type Schema = {
  type?: 'object' | 'string' | 'number' | 'integer' | 'boolean' | 'array' | readonly string[];
  description?: string;
  enum?: readonly (string | number)[];
  pattern?: string;
  minimum?: number;
  maximum?: number;
  exclusiveMaximum?: number;
  maxLength?: number;
  minItems?: number;
  maxItems?: number;
  items?: Schema;
  properties?: Record<string, Schema>;
  required?: readonly string[];
  additionalProperties?: boolean | Schema;
  [key: string]: unknown;
};

export interface ParamSpec {
  schema: Schema;
  /** The `sparsekit` flag it sets (kebab-case); absent for parameters the worker reads itself. */
  flag?: string;
  /** A path inside the data root (resolved, and refused outside it, before the job is stored). */
  file?: boolean;
}

export interface KindSpec {
  kind: JobKind;
  summary: string;
  /** The command and its positionals. */
  command: readonly string[];
  params: Record<string, ParamSpec>;
  /** Where the command writes its folder, relative to the job's folder (passed as --out, with --force). */
  out?: string;
  /** The result also goes into a comparison report (eval-harness's charts) in the job's report/ folder. */
  report?: boolean;
}

const NAME = '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$';
const fraction = (description: string): Schema => ({
  type: 'number',
  minimum: 0,
  exclusiveMaximum: 1,
  description,
});
const int = (description: string, minimum = 0, maximum = 1_000_000_000): Schema => ({
  type: 'integer',
  minimum,
  maximum,
  description,
});
const positive = (description: string): Schema => ({ type: 'number', minimum: 0, maximum: 1e9, description });
const text = (description: string): ParamSpec => ({
  schema: { type: 'string', maxLength: 1000, description },
  file: true,
});
const field = (name: string) => {
  for (const m of METHOD_TABLE) {
    const f = m.fields.find((x) => x.name === name);
    if (f !== undefined) return f.description;
  }
  return name;
};

const MODEL: ParamSpec = {
  schema: { type: 'string', pattern: NAME, description: 'a registered model (default: the bundled tiny-lm)' },
  flag: 'model',
};
const BACKEND: ParamSpec = {
  schema: {
    type: 'string',
    enum: ['auto', 'native', 'wasm', 'reference'],
    description: 'CPU kernels (default auto)',
  },
  flag: 'backend',
};
const PATTERN: Schema = { type: 'string', pattern: '^[0-9]{1,3}:[0-9]{1,3}$', description: field('pattern') };
const BLOCKS: Schema = { type: 'string', pattern: '^[0-9]{1,3}x[0-9]{1,3}$', description: field('blocks') };

const PRUNE_PARAMS: Record<string, ParamSpec> = {
  model: MODEL,
  method: {
    schema: {
      type: 'string',
      enum: METHOD_NAMES,
      description: METHOD_TABLE.map((m) => `${m.name}: ${m.summary}`).join('; '),
    },
    flag: 'method',
  },
  sparsity: { schema: fraction(field('sparsity')), flag: 'sparsity' },
  pattern: { schema: PATTERN, flag: 'pattern' },
  blocks: { schema: BLOCKS, flag: 'blocks' },
  mlpChannels: { schema: fraction('structured: fraction of MLP channels to remove'), flag: 'mlp-channels' },
  heads: { schema: fraction('structured: fraction of attention heads to remove'), flag: 'heads' },
  calib: {
    ...text('calibration text file, inside the data root (default: the bundled calibration text)'),
    flag: 'calib',
  },
  calibSamples: { schema: int('calibration windows', 1, 100_000), flag: 'calib-samples' },
  seqLen: { schema: int('tokens per calibration window', 1, 1_000_000), flag: 'seq-len' },
  seed: { schema: int('seed of the calibration draw'), flag: 'seed' },
  owl: { schema: { type: 'boolean', description: field('owl') }, flag: 'owl' },
  minKeep: {
    schema: { type: 'number', minimum: 0, maximum: 1, description: 'global-magnitude: least kept per layer' },
    flag: 'min-keep',
  },
  distribution: {
    schema: { type: 'string', enum: ['uniform', 'erk'], description: 'random: per-layer distribution' },
    flag: 'distribution',
  },
  pack: {
    schema: { type: 'boolean', description: 'store the pruned weights in sparse formats' },
    flag: 'pack',
  },
  backend: BACKEND,
};

const EVAL_PARAMS: Record<string, ParamSpec> = {
  model: MODEL,
  protocol: {
    schema: { type: 'string', enum: ['sparsegpt', 'rolling'], description: 'perplexity protocol' },
    flag: 'protocol',
  },
  text: { ...text('text file to score, inside the data root'), flag: 'text' },
  maxLength: { schema: int('tokens per window', 1, 1_000_000), flag: 'max-length' },
  maxWindows: { schema: int('windows to score', 1, 1_000_000), flag: 'max-windows' },
  batchSize: { schema: int('windows per batch', 1, 4096), flag: 'batch-size' },
  tasks: {
    schema: {
      type: 'string',
      pattern: '^[A-Za-z0-9_.-]+(,[A-Za-z0-9_.-]+)*$',
      maxLength: 1000,
      description: 'lm-evaluation-harness tasks, comma-separated (bundled: tinylm_cloze, tinylm_nextsent)',
    },
    flag: 'tasks',
  },
  data: { ...text('a task data folder, inside the data root'), flag: 'data' },
  numFewshot: { schema: int('few-shot examples', 0, 100), flag: 'num-fewshot' },
  limit: { schema: int('documents per task', 1, 10_000_000), flag: 'limit' },
  backend: BACKEND,
};

export const KINDS: Record<JobKind, KindSpec> = {
  prune: {
    kind: 'prune',
    summary: 'prune a model (the pruners method table), evaluate its layers, save it (packed with pack)',
    command: ['prune'],
    params: PRUNE_PARAMS,
    out: 'model',
  },
  eval: {
    kind: 'eval',
    summary: 'perplexity, or lm-evaluation-harness tasks with tasks',
    command: ['eval'],
    params: EVAL_PARAMS,
    report: true,
  },
  bench: {
    kind: 'bench',
    summary: 'decode and prefill tokens/s, time to first token, bytes and peak memory, stored vs densified',
    command: ['bench', 'model'],
    params: {
      model: MODEL,
      tokens: { schema: int('tokens to decode', 1, 100_000), flag: 'tokens' },
      threads: { schema: int('kernel threads', 1, 256), flag: 'threads' },
      backend: BACKEND,
    },
    report: true,
  },
  convert: {
    kind: 'convert',
    summary: 'store a model’s weights in another format',
    command: ['convert'],
    params: {
      model: MODEL,
      to: {
        schema: {
          type: 'string',
          enum: [...FORMAT_NAMES, 'compressed-tensors'],
          description: 'target format',
        },
        flag: 'to',
      },
      pattern: { schema: PATTERN, flag: 'pattern' },
      block: { schema: BLOCKS, flag: 'block' },
      dtype: {
        schema: { type: 'string', enum: ['f32', 'f16', 'bf16'], description: 'value type' },
        flag: 'dtype',
      },
    },
    out: 'model',
  },
  'sae-train': {
    kind: 'sae-train',
    summary: 'train a sparse autoencoder on activations at a hook site; a SAELens folder',
    command: ['sae', 'train'],
    params: {
      model: MODEL,
      site: {
        schema: { type: 'string', pattern: '^[A-Za-z0-9_.]{1,100}$', description: 'hook name' },
        flag: 'site',
      },
      architecture: {
        schema: { type: 'string', enum: SAE_ARCHITECTURES, description: 'SAE architecture' },
        flag: 'architecture',
      },
      expansion: { schema: positive('d_sae = expansion x d_in'), flag: 'expansion' },
      dSae: { schema: int('dictionary size', 1, 10_000_000), flag: 'd-sae' },
      k: { schema: int('latents per token (topk and relatives)', 1, 100_000), flag: 'k' },
      l1: { schema: positive('l1 coefficient'), flag: 'l1' },
      l0: { schema: positive('l0 coefficient'), flag: 'l0' },
      epochs: { schema: int('passes over the activations', 1, 10_000), flag: 'epochs' },
      batch: { schema: int('rows per step', 1, 1_000_000), flag: 'batch' },
      lr: { schema: positive('Adam learning rate'), flag: 'lr' },
      seed: { schema: int('seed'), flag: 'seed' },
      text: { ...text('training text, inside the data root'), flag: 'text' },
      evalText: { ...text('held-out text, inside the data root'), flag: 'eval-text' },
      evalWindows: { schema: int('held-out windows', 1, 100_000), flag: 'eval-windows' },
      backend: BACKEND,
    },
    out: 'sae',
  },
  'sae-features': {
    kind: 'sae-features',
    summary:
      "a trained SAE's features: density, top-activating contexts, the tokens each promotes (the feature browser's data)",
    command: ['sae', 'features'],
    params: {
      saeJob: { schema: int('the succeeded sae-train job whose SAE to read', 1) },
      model: MODEL,
      topFeatures: { schema: int('features with the largest activations', 1, 10_000), flag: 'top-features' },
      contexts: { schema: int('top contexts per feature', 1, 100), flag: 'contexts' },
      windows: { schema: int('windows of text', 1, 100_000), flag: 'windows' },
      text: { ...text('text to run, inside the data root'), flag: 'text' },
      backend: BACKEND,
    },
  },
  sweep: {
    kind: 'sweep',
    summary: 'prune with each method at each target, evaluate each, and compare them in one report',
    command: [],
    params: {
      model: MODEL,
      methods: {
        schema: {
          type: 'array',
          items: { type: 'string', enum: METHOD_NAMES },
          minItems: 1,
          maxItems: 8,
          description: 'methods',
        },
      },
      sparsities: {
        schema: {
          type: 'array',
          items: fraction('sparsity'),
          maxItems: 16,
          description: 'unstructured targets',
        },
      },
      patterns: { schema: { type: 'array', items: PATTERN, maxItems: 8, description: 'N:M targets' } },
      maxWindows: { schema: int('perplexity windows per model', 1, 100_000) },
      calibSamples: { schema: int('calibration windows', 1, 100_000) },
    },
  },
};

/** The JSON schema of a kind's params. */
export function paramsSchema(kind: JobKind): Schema {
  const spec = KINDS[kind];
  return {
    type: 'object',
    additionalProperties: false,
    properties: Object.fromEntries(Object.entries(spec.params).map(([name, p]) => [name, p.schema])),
    ...(kind === 'sweep'
      ? { required: ['methods'] }
      : kind === 'sae-features'
        ? { required: ['saeJob'] }
        : {}),
  };
}

/** `--flag=value` for each given param with a flag (booleans: `--flag` when true). */
export function flagArgs(kind: JobKind, params: Record<string, unknown>): string[] {
  const out: string[] = [];
  for (const [name, spec] of Object.entries(KINDS[kind].params)) {
    const v = params[name];
    if (v === undefined || spec.flag === undefined) continue;
    if (typeof v === 'boolean') {
      if (v) out.push(`--${spec.flag}`);
    } else out.push(`--${spec.flag}=${String(v)}`);
  }
  return out;
}
