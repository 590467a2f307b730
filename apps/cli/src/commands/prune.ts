import { join } from 'node:path';
import { writeFileAtomic } from '@sparsekit/core/node';
import { saveModel } from '@sparsekit/models/node';
import {
  MAX_CALIBRATION_SAMPLES,
  METHOD_NAMES,
  METHOD_TABLE,
  needsCalibration,
  parseRecipe,
  type Recipe,
  runRecipe,
  validateRecipe,
} from '@sparsekit/pruners';
import { choiceFlag, numberFlag, patternFlag, stringFlag, UsageError } from '../args.js';
import { BACKEND_FLAG, BACKEND_HELP, openBackend } from '../backend.js';
import type { Command } from '../command.js';
import {
  builtinText,
  calibrationBatches,
  defaultText,
  loadModel,
  modelDir,
  readText,
  requireTokenizer,
} from '../model-io.js';
import { outDirFlag, writeDir } from '../out-dir.js';
import { printReport } from './prune-report.js';

const METHODS = METHOD_NAMES;
/** Methods that allocate sparsity over all selected layers at once, without calibration. */
const ALLOCATIONS: readonly string[] = METHOD_TABLE.filter((m) => m.calibration === 'never').map(
  (m) => m.name,
);
/** Methods that give a smaller dense model (nothing to pack, no per-layer errors). */
const SMALLER: readonly string[] = METHOD_TABLE.filter((m) => m.gives === 'smaller').map((m) => m.name);

export const pruneCommand: Command = {
  name: 'prune',
  summary: 'one-shot pruning (magnitude, Wanda, SparseGPT, SliceGPT, structured, global, random) and save',
  help: `Usage: sparsekit prune --method M (--sparsity S | --pattern N:M) --out DIR [--model DIR]
       sparsekit prune --method structured [--mlp-channels F] [--heads F] --out DIR [--model DIR]
       sparsekit prune --recipe FILE --out DIR [--model DIR]

Prunes block by block on calibration text, as the reference code does, reports per-layer measured
sparsity, PQ Index, reconstruction error and time, and saves the model to --out (dense weights
under Hugging Face names; with --pack each pruned layer in the sparse format its kernel runs).
SliceGPT deletes a fraction of the hidden width instead, and structured pruning deletes MLP channels
and attention heads scored by their activations: both give a smaller dense model.

Flags:
  --model DIR          Hugging Face folder (default: the bundled tiny-lm)
  --method M           one of the methods below
  --sparsity S         fraction of weights to remove, in [0, 1) (SliceGPT: of the hidden width)
  --pattern N:M        N kept of every M inputs, e.g. 2:4 (instead of --sparsity)
  --blocks RxC         with --sparsity (magnitude, wanda, sparsegpt): prune whole blocks of R
                       output rows x C inputs, e.g. 1x8 (with --pack: stored as BSR)
  --mlp-channels F     structured: fraction of every block's MLP channels to delete
  --heads F            structured: fraction of every block's attention heads to delete (with
                       grouped-query attention, the same number from every key/value group)
  --recipe FILE        a JSON or YAML recipe (method, sparsity or pattern, layers, overrides,
                       calibration, owl; slicegpt: sparsity; structured: structured.mlpChannels/heads)
  --calib FILE         calibration text, or 'builtin' (default: tiny-lm's calibration text)
  --calib-samples N    random windows drawn from it (default 128)
  --seq-len N          tokens per window (default: the model's maximum, at most 2048)
  --seed N             seed of the window draw, and of random pruning (default 0)
  --min-keep F         global-magnitude: the smallest fraction of its weights a layer keeps (0.01)
  --distribution D     random: uniform (every layer at the target) or erk (default uniform)
  --owl                OWL layer-wise sparsity (Wanda / SparseGPT, unstructured)
  --no-errors          skip the per-layer reconstruction error (magnitude then needs no
                       calibration pass at all)
  --pack               store pruned layers packed (N:M, BSR, CSR or bitmask) instead of dense
  --out DIR            where to write the model and prune-report.json (required; a new or empty
                       folder, written whole at the end)
  --force              replace --out if it already holds files
${BACKEND_HELP}
  --json               print the report as JSON

Methods:
${METHOD_TABLE.map((m) => `  ${m.name.padEnd(19)} ${m.summary}${m.calibration === 'never' ? ' (no calibration)' : ''}`).join('\n')}

Examples:
  sparsekit prune --method wanda --sparsity 0.5 --out out/tiny-lm-wanda50
  sparsekit prune --method sparsegpt --pattern 2:4 --pack --out out/tiny-lm-2of4
  sparsekit prune --method wanda --sparsity 0.7 --blocks 1x8 --pack --out out/tiny-lm-70-1x8
  sparsekit prune --method slicegpt --sparsity 0.2 --out out/tiny-lm-sliced
  sparsekit prune --method structured --mlp-channels 0.25 --heads 0.5 --out out/tiny-lm-narrow
  sparsekit prune --model ./my-llama --recipe recipe.yaml --calib c4-sample.txt --out ./my-llama-50`,
  flags: {
    ...BACKEND_FLAG,
    model: { type: 'string' },
    method: { type: 'string' },
    sparsity: { type: 'string' },
    pattern: { type: 'string' },
    blocks: { type: 'string' },
    'mlp-channels': { type: 'string' },
    heads: { type: 'string' },
    recipe: { type: 'string' },
    calib: { type: 'string' },
    'calib-samples': { type: 'string' },
    'seq-len': { type: 'string' },
    seed: { type: 'string' },
    owl: { type: 'boolean' },
    'no-errors': { type: 'boolean' },
    'min-keep': { type: 'string' },
    distribution: { type: 'string' },
    pack: { type: 'boolean' },
    out: { type: 'string' },
    force: { type: 'boolean' },
  },
  async run({ flags, ui }) {
    const dir = modelDir(stringFlag(flags, 'model'));
    const out = outDirFlag('prune', flags, dir, 'the folder to write the pruned model to');
    const recipePath = stringFlag(flags, 'recipe');
    let recipe: Recipe | undefined;
    let method: (typeof METHODS)[number];
    if (recipePath !== undefined) {
      for (const f of ['method', 'sparsity', 'pattern', 'blocks', 'mlp-channels', 'heads']) {
        if (flags[f] !== undefined) throw new UsageError(`give either --recipe or --${f}, not both`, 'prune');
      }
      recipe = parseRecipe(readText(recipePath, '--recipe'));
      method = recipe.method;
    } else {
      method = choiceFlag('prune', flags, 'method', METHODS, 'magnitude');
      if (flags.method === undefined)
        throw new UsageError(`--method is required (${METHODS.join(', ')})`, 'prune');
    }
    for (const [flag, only] of [
      ['min-keep', 'global-magnitude'],
      ['distribution', 'random'],
    ] as const) {
      if (flags[flag] !== undefined && (method !== only || recipe !== undefined))
        throw new UsageError(
          `--${flag} is for --method ${only} (a recipe says it in its own fields)`,
          'prune',
        );
    }
    if (ALLOCATIONS.includes(method)) {
      for (const f of ['owl', 'no-errors', 'pattern']) {
        if (flags[f] !== undefined)
          throw new UsageError(
            `${method} allocates unstructured sparsity without calibration; --${f} does not apply`,
            'prune',
          );
      }
    }
    if (flags.owl === true) {
      if (method === 'magnitude')
        throw new UsageError(
          '--owl allocates by Wanda scores: use it with --method wanda or sparsegpt',
          'prune',
        );
      if (flags.pattern !== undefined)
        throw new UsageError('--owl allocates unstructured sparsity: use --sparsity, not --pattern', 'prune');
    }
    const blocks = stringFlag(flags, 'blocks');
    if (blocks !== undefined) {
      if (!['magnitude', 'wanda', 'sparsegpt'].includes(method))
        throw new UsageError('--blocks is for --method magnitude, wanda or sparsegpt', 'prune');
      if (flags.pattern !== undefined)
        throw new UsageError(
          '--blocks prunes an unstructured target: use --sparsity, not --pattern',
          'prune',
        );
      if (!/^\d+[xX]\d+$/.test(blocks.trim()))
        throw new UsageError(`--blocks must be ROWSxCOLS such as 1x8 or 8x1, not "${blocks}"`, 'prune');
    }
    const structuredFlag = ['mlp-channels', 'heads'].find((f) => flags[f] !== undefined);
    if (method !== 'structured' && structuredFlag !== undefined)
      throw new UsageError(`--${structuredFlag} is for --method structured`, 'prune');
    if (SMALLER.includes(method)) {
      for (const f of ['owl', 'pack', 'no-errors']) {
        if (flags[f] !== undefined)
          throw new UsageError(`${method} gives a smaller dense model; --${f} does not apply`, 'prune');
      }
    }
    if (method === 'structured' && recipe === undefined) {
      for (const f of ['sparsity', 'pattern']) {
        if (flags[f] !== undefined)
          throw new UsageError(`structured pruning takes --mlp-channels / --heads, not --${f}`, 'prune');
      }
      const mlpChannels = numberFlag('prune', flags, 'mlp-channels', 0, { min: 0, below: 1 });
      const heads = numberFlag('prune', flags, 'heads', 0, { min: 0, below: 1 });
      if (mlpChannels === 0 && heads === 0)
        throw new UsageError('give --mlp-channels F and/or --heads F (fractions in (0, 1))', 'prune');
      recipe = { method, structured: { mlpChannels, heads } };
    } else if (recipePath === undefined) {
      const pattern = stringFlag(flags, 'pattern');
      if ((pattern === undefined) === (flags.sparsity === undefined)) {
        throw new UsageError('give exactly one of --sparsity S or --pattern N:M', 'prune');
      }
      if (pattern !== undefined && method === 'slicegpt') {
        throw new UsageError(
          'SliceGPT slices a fraction of the width: use --sparsity, not --pattern',
          'prune',
        );
      }
      const parsed = pattern === undefined ? undefined : patternFlag('prune', pattern);
      const sparsity = numberFlag('prune', flags, 'sparsity', 0, { min: 0, below: 1 });
      recipe = { method, ...(parsed === undefined ? { sparsity } : { pattern: `${parsed.n}:${parsed.m}` }) };
      if (blocks !== undefined) recipe.blocks = blocks.trim();
      if (method === 'global-magnitude' && flags['min-keep'] !== undefined)
        recipe.global = { minKeep: numberFlag('prune', flags, 'min-keep', 0.01, { min: 0, max: 1 }) };
      if (method === 'random')
        recipe.random = {
          distribution: choiceFlag('prune', flags, 'distribution', ['uniform', 'erk'] as const, 'uniform'),
          seed: numberFlag('prune', flags, 'seed', 0, { integer: true, min: 0 }),
        };
    }
    // --owl goes into the recipe, so the report records it.
    if (flags.owl === true) recipe = { ...recipe!, owl: true };
    recipe = validateRecipe(recipe);
    const errors = flags['no-errors'] !== true;
    const backend = await openBackend('prune', flags, ui);
    try {
      const loaded = await loadModel(dir, backend);
      const { model } = loaded;
      const tokenizer = requireTokenizer(loaded, dir);
      const calib = recipe.calibration ?? {};
      const samples = numberFlag('prune', flags, 'calib-samples', calib.samples ?? 128, {
        integer: true,
        min: 1,
        max: MAX_CALIBRATION_SAMPLES,
      });
      const seqLen = numberFlag(
        'prune',
        flags,
        'seq-len',
        calib.seqLen ?? Math.min(model.maxSequenceLength, 2048),
        { integer: true, min: 2, max: model.maxSequenceLength },
      );
      const seed = numberFlag('prune', flags, 'seed', calib.seed ?? 0, { integer: true, min: 0 });
      const given = stringFlag(flags, 'calib');
      const calibFlag = given ?? 'builtin';
      // The default text is tiny-lm's; `--calib builtin` asks for it explicitly (and is checked for unknown tokens).
      const calibText = () =>
        given === undefined
          ? defaultText('calibration', dir, '--calib')
          : calibFlag === 'builtin'
            ? builtinText('calibration')
            : readText(calibFlag, '--calib');
      const batches = needsCalibration(recipe, { reconstructionError: errors })
        ? calibrationBatches(tokenizer, calibText(), { samples, seqLen, seed }, (line) => ui.note(line))
        : [];
      // The report records the recipe as run: calibration flags override the recipe's.
      if (batches.length > 0) recipe = { ...recipe, calibration: { samples: batches.length, seqLen, seed } };
      const report = await runRecipe(model, batches, recipe, {
        backend,
        reconstructionError: errors,
        pack: flags.pack === true,
        onProgress: ui.progress(method === 'slicegpt' ? 'slice' : 'prune'),
      });
      ui.done();
      printReport(ui, report);
      const result = {
        model: dir,
        out: out.path,
        calibration: { source: calibFlag, samples: batches.length, seqLen, seed },
        layout: (flags.pack === true ? 'packed' : 'hf') as 'packed' | 'hf',
        report,
      };
      await writeDir(out, async (tmp) => {
        await saveModel(model, tmp, { layout: result.layout }); // copies the tokenizer files itself
        await writeFileAtomic(join(tmp, 'prune-report.json'), (f) =>
          f.writeFile(`${JSON.stringify(result, null, 2)}\n`, 'utf8'),
        );
      });
      ui.say(`\nwrote ${out.path} (${result.layout}) and ${join(out.path, 'prune-report.json')}`);
      return result;
    } finally {
      await backend.dispose();
    }
  },
};
