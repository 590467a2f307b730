import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import {
  ACTIVATION_METHODS,
  ACTIVATION_SITES,
  type ActivationMethodName,
  type ActivationSite,
  ALL_ACTIVATION_SITES,
  applyThresholds,
  calibrateFor,
  makeRules,
  measureActivations,
  type Thresholds,
  weightsSkipped,
} from '@sparsekit/activation-sparsity';
import {
  loadCalibration,
  loadThresholds,
  saveCalibration,
  saveThresholds,
} from '@sparsekit/activation-sparsity/node';
import { perplexity } from '@sparsekit/eval-harness';
import { generationSpeed } from '@sparsekit/models';
import type { LoadedModel } from '@sparsekit/models/node';
import {
  actionOf,
  choiceFlag,
  type Flags,
  numberFlag,
  requireFlag,
  stringFlag,
  UsageError,
} from '../args.js';
import { BACKEND_FLAG, BACKEND_HELP, type CpuBackend, openBackend } from '../backend.js';
import type { Command } from '../command.js';
import {
  calibrationBatches,
  checkKnownText,
  defaultText,
  loadModel,
  modelDir,
  readText,
  requireTokenizer,
} from '../model-io.js';
import { table, type Ui } from '../ui.js';

const ACTIONS = ['measure', 'calibrate', 'eval', 'bench'] as const;
const METHOD_NAMES = ACTIVATION_METHODS.map((m) => m.name);

export const activationsCommand: Command = {
  name: 'activations',
  summary: 'activation sparsity: measure it, calibrate thresholds, evaluate and time them',
  positionals: 1,
  help: `Usage: sparsekit activations measure   [--model DIR] [--thresholds FILE] [--sites S,..] [--eps E] [--chunk K]
       sparsekit activations calibrate --out FILE [--method M] [--sparsity S] [--save-calibration FILE | --calibration FILE]
       sparsekit activations eval      --thresholds FILE [--model DIR] [--text FILE] [--no-dense]
       sparsekit activations bench     --thresholds FILE [--model DIR] [--tokens N] [--reps N]

measure: per block and site, token-level sparsity (TLS: share of a token's values inactive, |a| <= eps)
  and chunk-level sparsity (CLS: inactive across --chunk consecutive tokens) on the calibration text,
  of the model as it is or with --thresholds applied; a bar per block.
calibrate: make a thresholds file (JSON) with one method:
${ACTIVATION_METHODS.map((m) => `    ${m.name.padEnd(12)} ${m.summary}`).join('\n')}
  --save-calibration writes the calibration (safetensors) to make other sparsities from later
  (--calibration reads one back instead of calibrating).
eval: perplexity with the thresholds applied to every token (and the dense model's, same run), the
  sparsity measured on the evaluated tokens and the share of block weights a sparse decode skips.
bench: decode and prefill tokens/s with the thresholds applied and sparse decode on (one-token
  products on inputs with >= --min-zero-share zeros read only the nonzero inputs' weight columns)
  against the same model dense, in the same run.

Flags:
  --model DIR             Hugging Face folder (default: the bundled tiny-lm)
  --method M              ${METHOD_NAMES.join(' | ')} (default teal)
  --sparsity S            target in [0, 1) (default 0.5)
  --calib FILE            calibration text (default: the model's calibration text)
  --calib-samples N       calibration windows (default 16); --seq-len N tokens each (default 128)
  --seed N                window sampling seed (default 0)
  --out FILE              calibrate: where the thresholds go (JSON, written atomically)
  --thresholds FILE       a thresholds file from calibrate
  --sites S,..            measure: sites (default ${ACTIVATION_SITES.join(',')})
  --eps E / --chunk K     measure: inactive when |a| <= E (default 0); CLS chunk (default 8)
  --text FILE             eval: text to score (default: the model's test text)
  --max-length N          eval: window length (default 128)
  --max-windows N         eval: score only the first N windows (default: all)
  --no-dense              eval: skip the dense perplexity
  --tokens N / --reps N   bench: tokens decoded per run (default 32), timed runs (default 3)
  --min-zero-share Z      bench: sparse decode threshold (default 0.1)
  --threads T             kernel threads (default: all cores)
${BACKEND_HELP}
  --json                  print the result as JSON

Examples:
  sparsekit activations measure
  sparsekit activations calibrate --method teal --sparsity 0.5 --out teal-50.json
  sparsekit activations eval --thresholds teal-50.json
  sparsekit activations bench --thresholds teal-50.json`,
  flags: {
    ...BACKEND_FLAG,
    model: { type: 'string' },
    method: { type: 'string' },
    sparsity: { type: 'string' },
    calib: { type: 'string' },
    'calib-samples': { type: 'string' },
    'seq-len': { type: 'string' },
    seed: { type: 'string' },
    out: { type: 'string' },
    thresholds: { type: 'string' },
    calibration: { type: 'string' },
    'save-calibration': { type: 'string' },
    sites: { type: 'string' },
    eps: { type: 'string' },
    chunk: { type: 'string' },
    text: { type: 'string' },
    'max-length': { type: 'string' },
    'max-windows': { type: 'string' },
    'no-dense': { type: 'boolean' },
    tokens: { type: 'string' },
    reps: { type: 'string' },
    'min-zero-share': { type: 'string' },
    threads: { type: 'string' },
  },
  async run({ flags, positionals, ui }) {
    const action = actionOf('activations', positionals, ACTIONS);
    // Flags are checked before the model loads.
    const thresholdsPath =
      action === 'eval' || action === 'bench'
        ? requireFlag('activations', flags, 'thresholds', 'a file from "sparsekit activations calibrate"')
        : stringFlag(flags, 'thresholds');
    const rules = thresholdsPath === undefined ? undefined : await loadThresholds(thresholdsPath);
    const threads = numberFlag('activations', flags, 'threads', availableParallelism(), {
      integer: true,
      min: 1,
    });
    const dir = modelDir(stringFlag(flags, 'model'));
    const backend = await openBackend('activations', flags, ui, threads);
    try {
      if (action === 'calibrate') return await calibrate(flags, dir, backend, ui);
      const loaded = await loadModel(dir, backend);
      if (rules !== undefined) checkRulesFit(rules, loaded);
      if (action === 'measure') return await measure(flags, dir, loaded, rules, ui);
      if (action === 'eval') return await evaluate(flags, dir, loaded, rules!, ui);
      return bench(flags, loaded, rules!, ui);
    } finally {
      await backend.dispose();
    }
  },
};

type Backend = CpuBackend;

function calibrationInput(flags: Flags, dir: string, loaded: LoadedModel, ui: Ui) {
  const samples = numberFlag('activations', flags, 'calib-samples', 16, { integer: true, min: 1, max: 4096 });
  const seqLen = numberFlag('activations', flags, 'seq-len', Math.min(128, loaded.model.maxSequenceLength), {
    integer: true,
    min: 2,
    max: loaded.model.maxSequenceLength,
  });
  const seed = numberFlag('activations', flags, 'seed', 0, { integer: true, min: 0 });
  const path = stringFlag(flags, 'calib');
  const text = path === undefined ? defaultText('calibration', dir, '--calib') : readText(path, '--calib');
  return calibrationBatches(requireTokenizer(loaded, dir), text, { samples, seqLen, seed }, (l) =>
    ui.note(l),
  );
}

async function calibrate(flags: Flags, dir: string, backend: Backend, ui: Ui) {
  const out = requireFlag('activations', flags, 'out', 'where the thresholds file goes');
  const method = choiceFlag('activations', flags, 'method', METHOD_NAMES, 'teal') as ActivationMethodName;
  const sparsity = numberFlag('activations', flags, 'sparsity', 0.5, { min: 0, below: 1 });
  const fromPath = stringFlag(flags, 'calibration');
  const savePath = stringFlag(flags, 'save-calibration');
  if (fromPath !== undefined && savePath !== undefined)
    throw new UsageError(
      'give --calibration (read one) or --save-calibration (write one), not both',
      'activations',
    );
  if (fromPath !== undefined && !existsSync(fromPath))
    throw new UsageError(`--calibration ${fromPath} does not exist`, 'activations');
  const loaded = await loadModel(dir, backend);
  const start = performance.now();
  const needsBatches = fromPath === undefined || method === 'teal-greedy' || method === 'chess+';
  const batches = needsBatches ? calibrationInput(flags, dir, loaded, ui) : [];
  const progress = { onProgress: ui.progress('calibrate') };
  const calibration =
    fromPath === undefined
      ? await calibrateFor(loaded.model, method, batches, progress)
      : await loadCalibration(fromPath);
  if (savePath !== undefined && calibration !== undefined) await saveCalibration(savePath, calibration);
  const rules = await makeRules(loaded.model, method, sparsity, batches, {
    ...(calibration === undefined ? {} : { calibration }),
    ...progress,
  });
  await saveThresholds(out, rules);
  ui.done();
  const seconds = (performance.now() - start) / 1000;
  ui.say(
    `${method} at ${(100 * sparsity).toFixed(0)}%: ${rules.entries.length} (block, site) rules -> ${out}`,
  );
  ui.say(`took ${seconds.toFixed(1)} s`);
  return { method, sparsity, out, entries: rules.entries.length, seconds };
}

/** The thresholds must name blocks the model has, and channel thresholds must match its widths. */
function checkRulesFit(rules: Thresholds, loaded: LoadedModel): void {
  const blocks = loaded.model.numBlocks;
  const bad = rules.entries.find((e) => e.block >= blocks);
  if (bad !== undefined)
    throw new UsageError(
      `--thresholds names block ${bad.block}, but the model has ${blocks} blocks: they were made for another model`,
      'activations',
    );
  const width = loaded.model.config.intermediateSize;
  const wrong = rules.entries.find((e) => e.channels !== undefined && e.channels.length !== width);
  if (wrong !== undefined)
    throw new UsageError(
      `--thresholds has ${wrong.channels!.length} channel thresholds for block ${wrong.block}, the model's MLP has ${width}`,
      'activations',
    );
}

async function measure(
  flags: Flags,
  dir: string,
  loaded: LoadedModel,
  rules: Thresholds | undefined,
  ui: Ui,
) {
  const sites = (stringFlag(flags, 'sites') ?? ACTIVATION_SITES.join(','))
    .split(',')
    .map((s) => s.trim()) as ActivationSite[];
  for (const s of sites)
    if (!(ALL_ACTIVATION_SITES as readonly string[]).includes(s))
      throw new UsageError(
        `--sites: unknown site "${s}"; sites: ${ALL_ACTIVATION_SITES.join(', ')}`,
        'activations',
      );
  const eps = numberFlag('activations', flags, 'eps', 0, { min: 0 });
  const chunk = numberFlag('activations', flags, 'chunk', 8, { integer: true, min: 1 });
  const batches = calibrationInput(flags, dir, loaded, ui);
  const applied = rules === undefined ? undefined : applyThresholds(loaded.model.hooks, rules);
  let result: Awaited<ReturnType<typeof measureActivations>>;
  try {
    result = await measureActivations(loaded.model, batches, {
      sites,
      eps,
      chunk,
      onProgress: ui.progress('measure'),
    });
  } finally {
    applied?.remove();
  }
  ui.done();
  ui.say(
    `activation sparsity of ${dir}${rules === undefined ? '' : ` with ${rules.method} thresholds`} (inactive: |a| <= ${eps}), ${batches.length} windows\n`,
  );
  ui.say(
    table(
      ['block', 'site', 'width', 'TLS', `CLS (k=${chunk})`, 'TLS (0 to 100%)'],
      result.sites.map((s) => [
        String(s.block),
        s.site,
        String(s.width),
        `${(100 * s.tls).toFixed(1)}%`,
        `${(100 * s.cls).toFixed(1)}%`,
        bar(s.tls),
      ]),
    ),
  );
  ui.say(`\noverall ${(100 * result.overall).toFixed(1)}% inactive`);
  return {
    model: dir,
    thresholds: rules?.method ?? null,
    eps,
    chunk,
    overall: result.overall,
    sites: result.sites.map(({ channelActivity, ...s }) => ({
      ...s,
      deadChannels: channelActivity.filter((a) => a === 0).length,
    })),
  };
}

/** A bar of 20 cells for a share in [0, 1]. */
function bar(share: number): string {
  const cells = Math.round(share * 20);
  return `${'#'.repeat(cells)}${'.'.repeat(20 - cells)}`;
}

async function evaluate(flags: Flags, dir: string, loaded: LoadedModel, rules: Thresholds, ui: Ui) {
  const tokenizer = requireTokenizer(loaded, dir);
  const textPath = stringFlag(flags, 'text');
  const text = textPath === undefined ? defaultText('test', dir, '--text') : readText(textPath, '--text');
  checkKnownText(tokenizer, tokenizer.encode(text), 'evaluation text');
  const maxLength = numberFlag(
    'activations',
    flags,
    'max-length',
    Math.min(128, loaded.model.maxSequenceLength),
    {
      integer: true,
      min: 2,
      max: loaded.model.maxSequenceLength,
    },
  );
  const maxWindows = numberFlag('activations', flags, 'max-windows', 0, { integer: true, min: 1 });
  const windows = maxWindows > 0 ? { maxWindows } : {};
  const model = loaded.model;
  const dense =
    flags['no-dense'] === true
      ? undefined
      : await perplexity(model, tokenizer, text, { maxLength, ...windows, onProgress: ui.progress('dense') });
  const applied = applyThresholds(model.hooks, rules);
  let sparse: Awaited<ReturnType<typeof perplexity>>;
  try {
    sparse = await perplexity(model, tokenizer, text, {
      maxLength,
      ...windows,
      onProgress: ui.progress(rules.method),
    });
  } finally {
    applied.remove();
  }
  ui.done();
  const skipped = weightsSkipped(model, applied.measured());
  if (dense !== undefined) ui.say(`dense perplexity ${dense.perplexity.toFixed(3)}`);
  ui.say(
    `${rules.method} perplexity ${sparse.perplexity.toFixed(3)}  (${sparse.scoredTokens} tokens scored)`,
  );
  ui.say(
    `measured: ${(100 * applied.overall()).toFixed(1)}% of values at the thresholded sites, ${(100 * skipped).toFixed(1)}% of block weights skippable at decode`,
  );
  return {
    model: dir,
    method: rules.method,
    target: rules.sparsity,
    densePerplexity: dense?.perplexity ?? null,
    perplexity: sparse.perplexity,
    sitesSparsity: applied.overall(),
    weightsSkipped: skipped,
    sites: applied.measured(),
  };
}

function bench(flags: Flags, loaded: LoadedModel, rules: Thresholds, ui: Ui) {
  const reps = numberFlag('activations', flags, 'reps', 3, { integer: true, min: 1 });
  const newTokens = numberFlag('activations', flags, 'tokens', 32, { integer: true, min: 2 });
  const minZeroShare = numberFlag('activations', flags, 'min-zero-share', 0.1, { min: 0, max: 1 });
  const model = loaded.model;
  const options = { reps, newTokens, promptLength: 16 };
  ui.note('timing dense ...');
  const dense = generationSpeed(model, options);
  const applied = applyThresholds(model.hooks, rules);
  model.sparseDecode = { minZeroShare };
  let sparse: ReturnType<typeof generationSpeed>;
  try {
    ui.note(`timing ${rules.method} with sparse decode ...`);
    sparse = generationSpeed(model, options);
  } finally {
    model.sparseDecode = undefined;
    applied.remove();
  }
  const skipped = weightsSkipped(model, applied.measured());
  const speedup = sparse.decodeTokensPerSecond / dense.decodeTokensPerSecond;
  ui.say(
    table(
      ['model', 'decode tok/s', 'prefill tok/s'],
      [
        ['dense', dense.decodeTokensPerSecond.toFixed(1), dense.prefillTokensPerSecond.toFixed(1)],
        [
          `${rules.method} (${(100 * skipped).toFixed(0)}% weights skipped)`,
          sparse.decodeTokensPerSecond.toFixed(1),
          sparse.prefillTokensPerSecond.toFixed(1),
        ],
      ],
    ),
  );
  ui.say(`\ndecode ${speedup.toFixed(2)}x dense (median of ${reps} runs of ${newTokens} tokens, same run)`);
  return {
    method: rules.method,
    minZeroShare,
    reps,
    newTokens,
    dense,
    sparse,
    decodeSpeedup: speedup,
    weightsSkipped: skipped,
  };
}
