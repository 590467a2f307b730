// sparsekit moe: inspect | eval | prune of a mixture-of-experts model.
import { availableParallelism } from 'node:os';
import { tinyLmMoePath } from '@sparsekit/models/node';
import { type CapacityConvention, moeLayers, ROUTERS } from '@sparsekit/moe-router';
import { actionOf, choiceFlag, type Flags, numberFlag, stringFlag, UsageError } from '../../args.js';
import { BACKEND_FLAG, BACKEND_HELP, openBackend } from '../../backend.js';
import type { Command } from '../../command.js';
import { loadModel, modelDir } from '../../model-io.js';
import { outDirFlag } from '../../out-dir.js';
import { evaluate, type RouterChoice } from './evaluate.js';
import { inspect } from './inspect.js';
import { prune, pruneChoice, STAGE_TWO_METHODS } from './prune.js';

const ACTIONS = ['inspect', 'eval', 'prune'] as const;
/** Flags only some actions read. */
const ONLY: Record<string, readonly (typeof ACTIONS)[number][]> = {
  text: ['inspect', 'eval'],
  windows: ['inspect', 'eval'],
  router: ['eval'],
  'capacity-factor': ['eval'],
  'capacity-rule': ['eval'],
  experts: ['prune'],
  'expert-ratio': ['prune'],
  lambda: ['prune'],
  method: ['prune'],
  sparsity: ['prune'],
  pattern: ['prune'],
  calib: ['prune'],
  'calib-samples': ['prune'],
  'seq-len': ['prune'],
  seed: ['prune'],
  pack: ['prune'],
  out: ['prune'],
  force: ['prune'],
};
const ROUTER_NAMES = ROUTERS.map((r) => r.name);
const RULES = ['switch', 'tutel', 'deepspeed'] as const satisfies readonly CapacityConvention[];

export const moeCommand: Command = {
  name: 'moe',
  summary:
    "mixture of experts: inspect a model's routing, evaluate it under another router, prune experts (STUN)",
  positionals: 1,
  help: `Usage: sparsekit moe inspect [--model DIR] [--text FILE] [--windows N]
       sparsekit moe eval    [--model DIR] [--router NAME] [--capacity-factor F] [--capacity-rule R]
                             [--text FILE] [--windows N]
       sparsekit moe prune   [--model DIR] (--experts N | --expert-ratio R) [--lambda L]
                             [--method M (--sparsity S | --pattern N:M)] --out DIR

inspect: for a mixture-of-experts model (Mixtral layout), each MoE layer's experts, experts per token
  and router, and how its own router routes the calibration text: tokens per expert, the load's
  coefficient of variation and max / mean, and the load-balancing loss (Mixtral's form, coefficient
  1: k at perfect balance) and router z-loss (coefficient 1), over every token of --windows windows.
eval: perplexity (SparseGPT protocol, windows of the model's context) of the model with its router
  replaced in every MoE layer by --router (same gate logits, same experts per token), tokens over the
  capacity dropped (they ride the residual), and of the same model with its own router, in one run;
  the drop rate and load per layer. Each window is one forward pass, so a capacity is slots per
  expert per window (Switch: floor(F x tokens x k / experts)).
${ROUTERS.map((r) => `    ${r.name.padEnd(14)} ${r.summary}`).join('\n')}
  expert-choice is not causal (a token's experts depend on later tokens): its perplexity is not a
  language-model score, only a measure of what the routing does.
prune: STUN's two stages. Structured: one pass over the calibration windows records which experts
  each token went to; per layer, experts are compared by the cosine of their gate rows plus lambda
  times their co-activation, and the expert chosen less often of the most similar pair is removed,
  greedily, until --experts remain (or --expert-ratio of them is gone); gate rows go with them and
  each router keeps its k (clamped to the experts left). Unstructured (with --method): the experts'
  layers are pruned by a pruners method on the same windows (router gates and attention stay
  dense). Prints the removals, the second stage's per-layer report, and the share of the experts'
  weights removed (counted from the weights), and saves the model and prune-report.json to --out.

Flags:
  --model DIR            a Hugging Face mixture-of-experts folder (config.json with num_local_experts;
                         default: the bundled tiny-lm-moe, 8 experts, top-4)
  --text FILE            text to route or score (default: tiny-lm's calibration text for inspect, its
                         test text for eval; only models with tiny-lm's tokenizer read those)
  --windows N            windows of the model's context (default 8)
  --router NAME          eval: ${ROUTER_NAMES.join(' | ')} (default top-k)
  --capacity-factor F    eval: expert capacity factor (routers that take a capacity: ${ROUTERS.filter(
    (r) => 'capacity' in r.options,
  )
    .map((r) => r.name)
    .join(', ')}); default: the router's own (top-k: dropless)
  --capacity-rule R      eval: how F becomes slots per expert: ${RULES.join(' | ')} (default switch)
  --experts N            prune: experts each MoE layer keeps
  --expert-ratio R       prune: share of each layer's experts to remove, in [0, 1) (rounded)
  --lambda L             prune: weight of co-activation against gate-row similarity (default 1)
  --method M             prune: unstructured stage, one of ${STAGE_TWO_METHODS.join(', ')}
  --sparsity S           prune: fraction of the experts' weights to zero, in [0, 1)
  --pattern N:M          prune: N kept of every M inputs (instead of --sparsity)
  --calib FILE           prune: calibration text, or 'builtin' (default: tiny-lm's calibration text)
  --calib-samples N      prune: random windows drawn from it (default 64)
  --seq-len N            prune: tokens per window (default: the model's maximum, at most 2048)
  --seed N               prune: seed of the window draw (default 0)
  --pack                 prune: store pruned layers packed (N:M, CSR or bitmask)
  --out DIR              prune: where to write the model and prune-report.json (a new or empty
                         folder, written whole at the end)
  --force                prune: replace --out if it already holds files
  --threads T            kernel threads (default: all cores)
${BACKEND_HELP}
  --json                 print the result as JSON

Examples:
  sparsekit moe inspect --windows 4
  sparsekit moe eval --router top-k --capacity-factor 1.25
  sparsekit moe eval --model ./mixtral-tiny --router switch --capacity-rule deepspeed --capacity-factor 1
  sparsekit moe prune --experts 6 --method wanda --sparsity 0.5 --out out/tiny-lm-moe-6x-w50`,
  flags: {
    ...BACKEND_FLAG,
    model: { type: 'string' },
    text: { type: 'string' },
    windows: { type: 'string' },
    router: { type: 'string' },
    'capacity-factor': { type: 'string' },
    'capacity-rule': { type: 'string' },
    threads: { type: 'string' },
    experts: { type: 'string' },
    'expert-ratio': { type: 'string' },
    lambda: { type: 'string' },
    method: { type: 'string' },
    sparsity: { type: 'string' },
    pattern: { type: 'string' },
    calib: { type: 'string' },
    'calib-samples': { type: 'string' },
    'seq-len': { type: 'string' },
    seed: { type: 'string' },
    pack: { type: 'boolean' },
    out: { type: 'string' },
    force: { type: 'boolean' },
  },
  async run({ flags, positionals, ui }) {
    const action = actionOf('moe', positionals, ACTIONS);
    const dir = modelDir(stringFlag(flags, 'model'), tinyLmMoePath());
    for (const [flag, actions] of Object.entries(ONLY))
      if (flags[flag] !== undefined && !actions.includes(action))
        throw new UsageError(`--${flag} is for moe ${actions.join(' / ')}, not moe ${action}`, 'moe');
    const windows = numberFlag('moe', flags, 'windows', 8, { integer: true, min: 1 });
    // Flags are checked before the model loads.
    const routing = action === 'eval' ? routerChoice(flags) : undefined;
    const pruning = action === 'prune' ? pruneChoice(flags) : undefined;
    const out =
      action === 'prune'
        ? outDirFlag('moe', flags, dir, 'the folder to write the pruned model to')
        : undefined;
    const threads = numberFlag('moe', flags, 'threads', availableParallelism(), { integer: true, min: 1 });
    const backend = await openBackend('moe', flags, ui, threads);
    try {
      const loaded = await loadModel(dir, backend);
      const layers = moeLayers(loaded.model);
      if (layers.length === 0)
        throw new UsageError(
          `--model ${dir} has no mixture-of-experts layer (a dense model); give a Mixtral-style folder`,
          'moe',
        );
      if (pruning !== undefined) return await prune(flags, loaded, dir, out!, pruning, backend, ui);
      return routing === undefined
        ? await inspect(flags, loaded, dir, layers, windows, ui)
        : await evaluate(flags, loaded, dir, layers, windows, routing, ui);
    } finally {
      await backend.dispose();
    }
  },
};

function routerChoice(flags: Flags): RouterChoice {
  const name = stringFlag(flags, 'router') ?? 'top-k';
  const entry = ROUTERS.find((r) => r.name === name);
  if (entry === undefined)
    throw new UsageError(`unknown --router "${name}"; use ${ROUTER_NAMES.join(', ')}`, 'moe');
  const rule = choiceFlag('moe', flags, 'capacity-rule', RULES, 'switch');
  if (stringFlag(flags, 'capacity-factor') === undefined) {
    if (stringFlag(flags, 'capacity-rule') !== undefined)
      throw new UsageError('--capacity-rule needs --capacity-factor', 'moe');
    return { entry, capacity: undefined };
  }
  const factor = numberFlag('moe', flags, 'capacity-factor', 1);
  if (rule !== 'tutel' && factor <= 0)
    throw new UsageError(
      `--capacity-factor must be > 0 under --capacity-rule ${rule} (only tutel reads 0 and negative factors), got "${factor}"`,
      'moe',
    );
  if (!('capacity' in entry.options))
    throw new UsageError(
      `--capacity-factor: the ${name} router has no capacity (routers with one: ${ROUTERS.filter(
        (r) => 'capacity' in r.options,
      )
        .map((r) => r.name)
        .join(', ')})`,
      'moe',
    );
  return { entry, capacity: { factor, convention: rule } };
}
