import { availableParallelism } from 'node:os';
import { calibrationWindows, perplexity } from '@sparsekit/eval-harness';
import type { LoadedModel } from '@sparsekit/models/node';
import {
  type CapacityConvention,
  concatRouteResults,
  type LayerRoutings,
  loadBalancingLoss,
  loadMetrics,
  type MoeLayer,
  moeLayers,
  ROUTERS,
  type RouterSettings,
  recordModelRoutings,
  routerZLoss,
  swapRouters,
} from '@sparsekit/moe-router';
import { createWasmBackend } from '@sparsekit/sparse-formats';
import {
  actionOf,
  choiceFlag,
  type Flags,
  numberFlag,
  requireFlag,
  stringFlag,
  UsageError,
} from '../args.js';
import type { Command } from '../command.js';
import { checkKnownText, defaultText, loadModel, modelDir, readText, requireTokenizer } from '../model-io.js';
import { table, type Ui } from '../ui.js';

const ACTIONS = ['inspect', 'eval'] as const;
const ROUTER_NAMES = ROUTERS.map((r) => r.name);
const RULES = ['switch', 'tutel', 'deepspeed'] as const satisfies readonly CapacityConvention[];

export const moeCommand: Command = {
  name: 'moe',
  summary: 'mixture of experts: inspect the routing of a model, evaluate it under another router',
  positionals: 1,
  help: `Usage: sparsekit moe inspect --model DIR [--text FILE] [--windows N]
       sparsekit moe eval    --model DIR [--router NAME] [--capacity-factor F] [--capacity-rule R]
                             [--text FILE] [--windows N]

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

Flags:
  --model DIR            a Hugging Face mixture-of-experts folder (config.json with num_local_experts)
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
  --threads T            wasm worker threads (default: all cores)
  --json                 print the result as JSON

Examples:
  sparsekit moe inspect --model ./mixtral-tiny --windows 4
  sparsekit moe eval --model ./mixtral-tiny --router top-k --capacity-factor 1.25
  sparsekit moe eval --model ./mixtral-tiny --router switch --capacity-rule deepspeed --capacity-factor 1`,
  flags: {
    model: { type: 'string' },
    text: { type: 'string' },
    windows: { type: 'string' },
    router: { type: 'string' },
    'capacity-factor': { type: 'string' },
    'capacity-rule': { type: 'string' },
    threads: { type: 'string' },
  },
  async run({ flags, positionals, ui }) {
    const action = actionOf('moe', positionals, ACTIONS);
    const dir = modelDir(requireFlag('moe', flags, 'model', 'a mixture-of-experts model folder'));
    const windows = numberFlag('moe', flags, 'windows', 8, { integer: true, min: 1 });
    // Flags are checked before the model loads.
    const routing = action === 'eval' ? routerChoice(flags) : undefined;
    const threads = numberFlag('moe', flags, 'threads', availableParallelism(), { integer: true, min: 1 });
    const backend = await createWasmBackend({ threads });
    try {
      const loaded = await loadModel(dir, backend);
      const layers = moeLayers(loaded.model);
      if (layers.length === 0)
        throw new UsageError(
          `--model ${dir} has no mixture-of-experts layer (a dense model); give a Mixtral-style folder`,
          'moe',
        );
      return routing === undefined
        ? await inspect(flags, loaded, dir, layers, windows, ui)
        : await evaluate(flags, loaded, dir, layers, windows, routing, ui);
    } finally {
      await backend.dispose();
    }
  },
};

interface RouterChoice {
  entry: (typeof ROUTERS)[number];
  capacity: { factor: number; convention: CapacityConvention } | undefined;
}

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

function textOf(flags: Flags, which: 'test' | 'calibration', dir: string): string {
  const path = stringFlag(flags, 'text');
  return path === undefined ? defaultText(which, dir, '--text') : readText(path, '--text');
}

const plural = (n: number, unit: string) => `${n} ${unit}${n === 1 ? '' : 's'}`;

function routerLabel(layer: MoeLayer): string {
  const name = (layer.router as { constructor?: { name?: string } }).constructor?.name;
  return name === undefined || name === 'Object' ? 'router' : name;
}

function expertsPerToken(loaded: LoadedModel, layer: MoeLayer): number {
  const own = (layer.router as { k?: unknown }).k;
  return typeof own === 'number' ? own : (loaded.model.config.moe?.expertsPerToken ?? 1);
}

/** Per-layer load of everything one layer routed. */
function layerLoad(layer: LayerRoutings) {
  const joined = concatRouteResults(layer.results, layer.numExperts);
  const m = loadMetrics(joined, layer.numExperts);
  return {
    block: layer.block,
    tokens: m.tokens,
    kept: m.kept,
    dropped: m.dropped,
    dropRate: m.dropRate,
    tokensWithoutExpert: m.tokensWithoutExpert,
    capacity: joined.capacity ?? null,
    tokensPerExpert: Array.from(m.tokensPerExpert),
    loadCv: m.loadCv,
    maxMeanLoad: m.maxMeanLoad,
  };
}

/** The router losses of everything one layer routed (the balancing loss of token-choice routings only). */
function layerLosses(layer: LayerRoutings) {
  const joined = concatRouteResults(layer.results, layer.numExperts);
  return {
    balancingLoss: joined.layout === 'ranked' ? loadBalancingLoss(joined, { alpha: 1 }) : null,
    zLoss: routerZLoss(joined, 1),
  };
}

async function inspect(
  flags: Flags,
  loaded: LoadedModel,
  dir: string,
  layers: MoeLayer[],
  count: number,
  ui: Ui,
) {
  const { model } = loaded;
  const tokenizer = requireTokenizer(loaded, dir);
  const ids = tokenizer.encode(textOf(flags, 'calibration', dir));
  checkKnownText(tokenizer, ids, 'calibration text');
  const seqLen = model.maxSequenceLength;
  if (ids.length < seqLen)
    throw new UsageError(
      `--text has ${ids.length} tokens, fewer than one window of the model's ${seqLen}`,
      'moe',
    );
  const batches = calibrationWindows(ids, { samples: count, seqLen, mode: 'consecutive' });
  const recording = recordModelRoutings(model);
  try {
    const progress = ui.progress('route');
    for (const [i, batch] of batches.entries()) {
      await model.logitsAsync(batch);
      progress({ stage: 'route', current: i + 1, total: batches.length, unit: 'window' });
    }
  } finally {
    recording.restore();
  }
  ui.done();
  const rows = recording.layers.map((l, i) => ({
    experts: l.numExperts,
    k: expertsPerToken(loaded, layers[i]!),
    router: routerLabel(layers[i]!),
    ...layerLoad(l),
    ...layerLosses(l),
  }));
  ui.say(
    `${dir}: ${layers.length} of ${model.params.blocks.length} blocks are mixtures of experts; ${plural(batches.length, 'window')} of ${seqLen} tokens routed by the model's own router\n`,
  );
  ui.say(
    table(
      [
        'block',
        'experts',
        'k',
        'router',
        'tokens',
        'tokens per expert',
        'load CV',
        'max/mean',
        'balance',
        'z-loss',
      ],
      rows.map((r) => [
        String(r.block),
        String(r.experts),
        String(r.k),
        r.router,
        String(r.tokens),
        r.tokensPerExpert.join(' '),
        r.loadCv.toFixed(3),
        r.maxMeanLoad.toFixed(2),
        r.balancingLoss === null ? '-' : r.balancingLoss.toFixed(3),
        r.zLoss.toFixed(3),
      ]),
    ),
  );
  return { model: dir, windows: batches.length, seqLen, layers: rows };
}

async function evaluate(
  flags: Flags,
  loaded: LoadedModel,
  dir: string,
  layers: MoeLayer[],
  count: number,
  choice: RouterChoice,
  ui: Ui,
) {
  const { model } = loaded;
  const tokenizer = requireTokenizer(loaded, dir);
  const text = textOf(flags, 'test', dir);
  checkKnownText(tokenizer, tokenizer.encode(text), 'evaluation text');
  const score = async (label: string) => {
    const recording = recordModelRoutings(model);
    try {
      const result = await perplexity(model, tokenizer, text, {
        maxWindows: count,
        // One window per forward pass: a capacity is slots per expert per window.
        batchSize: 1,
        onProgress: ui.progress(label),
      });
      return { result, layers: recording.layers.map(layerLoad) };
    } finally {
      recording.restore();
    }
  };
  const own = await score('own router');
  const { entry, capacity } = choice;
  const width = model.config.hiddenSize;
  const restore = swapRouters(model, (layer) => {
    const settings: RouterSettings = {
      numExperts: layer.numExperts,
      k: expertsPerToken(loaded, layer),
      width,
      seed: 0,
      ...(capacity === undefined ? {} : { capacity }),
    };
    return entry.make(settings);
  });
  let swapped: Awaited<ReturnType<typeof score>>;
  try {
    swapped = await score(entry.name);
  } finally {
    restore();
  }
  ui.done();
  const pooled = (ls: ReturnType<typeof layerLoad>[]) => {
    const kept = ls.reduce((s, l) => s + l.kept, 0);
    const dropped = ls.reduce((s, l) => s + l.dropped, 0);
    return { kept, dropped, dropRate: kept + dropped === 0 ? 0 : dropped / (kept + dropped) };
  };
  const capacityText =
    capacity === undefined ? `${entry.options.capacity ?? 'none'} (the router's own)` : capacity;
  const k = expertsPerToken(loaded, layers[0]!);
  const rows = [
    { name: `own (${routerLabel(layers[0]!)}, k ${k})`, run: own },
    { name: entry.name, run: swapped },
  ];
  ui.say(
    `${dir}: ${plural(own.result.protocol.windows, 'window')} of ${own.result.protocol.maxLength} tokens, ${own.result.scoredTokens} tokens scored; capacity ${
      typeof capacityText === 'string'
        ? capacityText
        : `factor ${capacityText.factor} (${capacityText.convention})`
    }\n`,
  );
  ui.say(
    table(
      ['router', 'perplexity', 'drop rate', 'mean load CV', 'mean max/mean'],
      rows.map(({ name, run }) => [
        name,
        run.result.perplexity.toFixed(3),
        `${(100 * pooled(run.layers).dropRate).toFixed(2)}%`,
        (run.layers.reduce((s, l) => s + l.loadCv, 0) / run.layers.length).toFixed(3),
        (run.layers.reduce((s, l) => s + l.maxMeanLoad, 0) / run.layers.length).toFixed(2),
      ]),
    ),
  );
  ui.say(`\n${entry.name}, per layer:`);
  ui.say(
    table(
      ['block', 'capacity/window', 'drop rate', 'no expert', 'tokens per expert', 'load CV', 'max/mean'],
      swapped.layers.map((l) => [
        String(l.block),
        l.capacity === null ? 'dropless' : String(l.capacity),
        `${(100 * l.dropRate).toFixed(2)}%`,
        String(l.tokensWithoutExpert),
        l.tokensPerExpert.join(' '),
        l.loadCv.toFixed(3),
        l.maxMeanLoad.toFixed(2),
      ]),
    ),
  );
  const summary = (run: typeof own) => ({
    perplexity: run.result.perplexity,
    ...pooled(run.layers),
    layers: run.layers,
  });
  return {
    model: dir,
    windows: own.result.protocol.windows,
    seqLen: own.result.protocol.maxLength,
    scoredTokens: own.result.scoredTokens,
    k,
    own: { router: routerLabel(layers[0]!), ...summary(own) },
    router: {
      name: entry.name,
      capacity: capacity ?? null,
      defaultCapacity: capacity === undefined ? (entry.options.capacity ?? null) : null,
      ...summary(swapped),
    },
  };
}
