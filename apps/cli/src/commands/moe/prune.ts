// sparsekit moe prune: STUN (Lee et al., arXiv 2409.06211): whole experts removed from one
// calibration pass, then the experts left pruned unstructured by a pruners method, through the
// spec interfaces (moe-router and pruners never import each other; this command composes them).
import { join } from 'node:path';
import { writeFileAtomic } from '@sparsekit/core/node';
import { type LoadedModel, saveModel } from '@sparsekit/models/node';
import { applyStun, EXPERT_LAYERS, expertWeightCounts, type StunPlan, stunPlan } from '@sparsekit/moe-router';
import {
  METHOD_TABLE,
  patternText,
  type Recipe,
  type RecipeReport,
  runRecipe,
  validateRecipe,
} from '@sparsekit/pruners';
import type { Backend } from '@sparsekit/sparse-formats';
import { type Flags, numberFlag, patternFlag, stringFlag, UsageError } from '../../args.js';
import { builtinText, calibrationBatches, defaultText, readText, requireTokenizer } from '../../model-io.js';
import { type OutDir, writeDir } from '../../out-dir.js';
import { table, type Ui } from '../../ui.js';
import { printReport } from '../prune-report.js';

/** Unstructured methods the second stage can run (those that leave zeros in place). */
export const STAGE_TWO_METHODS = METHOD_TABLE.filter((m) => m.gives === 'sparse').map((m) => m.name);
// The second stage prunes the routed experts' layers only (moe-router's EXPERT_LAYERS): router
// gates stay dense (a pruned gate reroutes tokens; llm-compressor ignores them too), and attention
// is left as it is, so the reported sparsity is STUN's: of the experts' weights.

export interface PruneChoice {
  experts: { targetExperts: number } | { ratio: number };
  lambda: number;
  recipe: Recipe | undefined;
}

/** The flags of `moe prune`, checked before the model loads. */
export function pruneChoice(flags: Flags): PruneChoice {
  const keep = flags.experts;
  const ratio = flags['expert-ratio'];
  if ((keep === undefined) === (ratio === undefined))
    throw new UsageError(
      'give exactly one of --experts N (experts each layer keeps) or --expert-ratio R (share removed)',
      'moe',
    );
  const experts =
    keep !== undefined
      ? { targetExperts: numberFlag('moe', flags, 'experts', 1, { integer: true, min: 1 }) }
      : { ratio: numberFlag('moe', flags, 'expert-ratio', 0, { min: 0, below: 1 }) };
  const lambda = numberFlag('moe', flags, 'lambda', 1, { min: 0 });
  const method = stringFlag(flags, 'method');
  const pattern = stringFlag(flags, 'pattern');
  if (method === undefined) {
    for (const f of ['sparsity', 'pattern', 'pack'])
      if (flags[f] !== undefined)
        throw new UsageError(`--${f} is for the unstructured stage: give --method too`, 'moe');
    return { experts, lambda, recipe: undefined };
  }
  if (!STAGE_TWO_METHODS.includes(method as never))
    throw new UsageError(
      `--method ${method}: the unstructured stage takes ${STAGE_TWO_METHODS.join(', ')}`,
      'moe',
    );
  if ((pattern === undefined) === (flags.sparsity === undefined))
    throw new UsageError('give exactly one of --sparsity S or --pattern N:M with --method', 'moe');
  const target =
    pattern === undefined
      ? { sparsity: numberFlag('moe', flags, 'sparsity', 0, { min: 0, below: 1 }) }
      : (() => {
          const p = patternFlag('moe', pattern);
          return { pattern: `${p.n}:${p.m}` };
        })();
  const recipe = validateRecipe({ method, ...target, layers: { include: [EXPERT_LAYERS] } });
  return { experts, lambda, recipe };
}

export async function prune(
  flags: Flags,
  loaded: LoadedModel,
  dir: string,
  out: OutDir,
  choice: PruneChoice,
  backend: Backend,
  ui: Ui,
) {
  const { model } = loaded;
  const tokenizer = requireTokenizer(loaded, dir);
  const samples = numberFlag('moe', flags, 'calib-samples', 64, { integer: true, min: 1, max: 4096 });
  const seqLen = numberFlag('moe', flags, 'seq-len', Math.min(model.maxSequenceLength, 2048), {
    integer: true,
    min: 2,
    max: model.maxSequenceLength,
  });
  const seed = numberFlag('moe', flags, 'seed', 0, { integer: true, min: 0 });
  const given = stringFlag(flags, 'calib');
  const text =
    given === undefined
      ? defaultText('calibration', dir, '--calib')
      : given === 'builtin'
        ? builtinText('calibration')
        : readText(given, '--calib');
  const batches = calibrationBatches(tokenizer, text, { samples, seqLen, seed }, (line) => ui.note(line));
  const before = { parameters: model.parameterCount(), ...expertWeightCounts(model) };
  const start = performance.now();
  const plan: StunPlan = await stunPlan(model, batches, {
    ...choice.experts,
    lambda: choice.lambda,
    onProgress: ui.progress('route'),
  });
  applyStun(model, plan);
  const stunSeconds = (performance.now() - start) / 1000;
  ui.done();
  const rows = plan.layers.map((l) => ({
    block: l.block,
    experts: l.numExperts,
    kept: l.kept,
    removed: l.removed,
    steps: l.steps,
    frequency: Array.from(l.frequency),
  }));
  ui.say(
    `STUN (lambda ${plan.lambda}, ${plan.tokens} calibration tokens, ${stunSeconds.toFixed(1)} s): experts removed per layer\n`,
  );
  ui.say(
    table(
      ['block', 'experts', 'kept', 'removed (most similar kept expert, similarity)'],
      rows.map((r) => [
        String(r.block),
        `${r.experts} -> ${r.kept.length}`,
        r.kept.join(' '),
        r.steps.map((s) => `${s.expert} (~${s.keptWith}, ${s.similarity.toFixed(2)})`).join(', ') || '-',
      ]),
    ),
  );
  let report: RecipeReport | undefined;
  if (choice.recipe !== undefined) {
    report = await runRecipe(model, batches, choice.recipe, {
      backend,
      pack: flags.pack === true,
      onProgress: ui.progress('prune'),
    });
    ui.done();
    ui.say('');
    printReport(ui, report);
  }
  const after = { parameters: model.parameterCount(), ...expertWeightCounts(model) };
  const totalSparsity = 1 - after.nonzero / before.weights;
  const summary = `${(100 * totalSparsity).toFixed(2)}% of the experts' weights removed (${before.weights.toLocaleString('en-US')} -> ${after.nonzero.toLocaleString('en-US')} nonzero); parameters ${before.parameters.toLocaleString('en-US')} -> ${after.parameters.toLocaleString('en-US')} stored`;
  ui.say(
    `\n${summary}${report?.pattern === undefined ? '' : ` (${patternText(report.pattern)} on the experts left)`}`,
  );
  const layout = (flags.pack === true ? 'packed' : 'hf') as 'packed' | 'hf';
  const result = {
    model: dir,
    out: out.path,
    calibration: { source: given ?? 'builtin', samples: batches.length, seqLen, seed },
    layout,
    stun: { lambda: plan.lambda, tokens: plan.tokens, seconds: stunSeconds, layers: rows },
    report: report ?? null,
    expertWeights: { before: before.weights, nonzeroAfter: after.nonzero, sparsity: totalSparsity },
    parameters: { before: before.parameters, after: after.parameters },
  };
  await writeDir(out, async (tmp) => {
    await saveModel(model, tmp, { layout });
    await writeFileAtomic(join(tmp, 'prune-report.json'), (f) =>
      f.writeFile(`${JSON.stringify(result, null, 2)}\n`, 'utf8'),
    );
  });
  ui.say(`\nwrote ${out.path} (${layout}) and ${join(out.path, 'prune-report.json')}`);
  return result;
}
