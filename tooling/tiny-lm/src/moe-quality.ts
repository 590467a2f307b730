/**
 * The MoE tiny-lm's tables, measured in one run:
 *
 *   node tooling/tiny-lm/dist/moe-quality.js [--moe packages/models/tiny-lm-moe] \
 *     [--moe-no-aux DIR] [--no-aux-log FILE] [--dense-total DIR] [--calib-windows 64] \
 *     [--random-seeds 3] [--out tooling/tiny-lm/results/moe-quality.json]
 *
 * 1. Perplexity of the MoE against dense tiny-lm (equal active parameters) and a dense model with
 *    the MoE's total MLP width (equal total parameters; `--dense-total`, trained by train.ts with
 *    `--intermediate`), and of the MoE trained without the load-balancing loss (`--moe-no-aux`).
 * 2. Load balance of the two MoEs on the test text (their own routers, dropless), and during
 *    training: the share of assignments per expert on the validation batches every 100 steps, from
 *    the two training logs (`--no-aux-log`: the run's training-log.json, or its printed JSON lines
 *    when it was stopped early; compared at the steps both reached, on the same schedule).
 * 3. Drop rate and perplexity against the capacity factor (Switch's rule per 128-token window:
 *    floor(F * T * k / E) slots per expert; tokens over it ride the residual), and dropless.
 * 4. STUN: experts removed per layer (lambda 1 and 0, against seeded random removal), alone and
 *    followed by Wanda on the experts left, at equal sparsity of the experts' weights against Wanda
 *    alone.
 *
 * Evaluation: the SparseGPT protocol (windows of 128 tokens, one per forward pass, so a capacity is
 * per window) over tiny-lm/test.txt, as the other tiny-lm tables. Calibration (STUN, Wanda):
 * `--calib-windows` windows of 128 tokens from tiny-lm/calibration.txt, seed 0. Writes the JSON and
 * a Markdown table next to it. Missing optional folders leave their rows out.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { markdownTable, numberOption, option } from '@sparsekit/bench';
import { Rng, type Tensor, type Tokenizer } from '@sparsekit/core';
import { calibrationWindows, perplexity } from '@sparsekit/eval-harness';
import type { TransformerLM } from '@sparsekit/models';
import { loadHfModel, tinyLmPath } from '@sparsekit/models/node';
import {
  applyStun,
  concatRouteResults,
  EXPERT_LAYERS,
  expertWeightCounts,
  loadMetrics,
  recordModelRoutings,
  softmaxTopK,
  stunPlan,
  swapRouters,
} from '@sparsekit/moe-router';
import { runRecipe } from '@sparsekit/pruners';
import { createWasmBackend } from '@sparsekit/sparse-formats';

const root = join(import.meta.dirname ?? '.', '..', '..', '..');
const moeDir = resolve(option('moe', join(root, 'packages', 'models', 'tiny-lm-moe')));
const noAuxDir = option('moe-no-aux', '');
const noAuxLog = option('no-aux-log', noAuxDir === '' ? '' : join(noAuxDir, 'training-log.json'));
const denseTotalDir = option('dense-total', '');
const calibCount = numberOption('calib-windows', 64);
const randomSeeds = numberOption('random-seeds', 3);
const outPath = resolve(option('out', join(root, 'tooling', 'tiny-lm', 'results', 'moe-quality.json')));
const seqLen = 128;
const testText = readFileSync(join(tinyLmPath(), 'test.txt'), 'utf8');
const calibText = readFileSync(join(tinyLmPath(), 'calibration.txt'), 'utf8');
const backend = await createWasmBackend();
const t0 = performance.now();
const say = (line: string) => console.error(`[${((performance.now() - t0) / 1000).toFixed(0)} s] ${line}`);

interface Loaded {
  model: TransformerLM;
  tokenizer: Tokenizer;
}

async function load(dir: string): Promise<Loaded> {
  const { model, tokenizer } = await loadHfModel(dir);
  model.backend = backend;
  return { model, tokenizer: tokenizer! };
}

/** Steps and tokens of a folder's training log (its last logged step). */
function trained(dir: string): { steps: number; tokens: number } | null {
  const path = join(dir, 'training-log.json');
  if (!existsSync(path)) return null;
  const log = JSON.parse(readFileSync(path, 'utf8')).log as {
    step?: number;
    event?: string;
    steps?: number;
  }[];
  const done = log.find((e) => e.event === 'trained');
  const steps =
    done?.steps ?? Math.max(0, ...log.filter((e) => typeof e.step === 'number').map((e) => e.step!));
  return { steps, tokens: steps * 16 * seqLen };
}

/** Parameters a token runs through: all, less the experts it is not routed to. */
function activeParameters(model: TransformerLM): number {
  let skipped = 0;
  for (const b of model.params.blocks) {
    if (b.mlp.kind !== 'moe') continue;
    const k = model.config.moe!.expertsPerToken;
    const expert = b.mlp.experts[0]!;
    const per = [expert.up, expert.down, ...(expert.kind === 'gated' ? [expert.gate] : [])].reduce(
      (s, l) => s + l.inFeatures * l.outFeatures,
      0,
    );
    skipped += (b.mlp.experts.length - Math.min(k, b.mlp.experts.length)) * per;
  }
  return model.parameterCount() - skipped;
}

interface LayerLoad {
  block: number;
  loadCv: number;
  maxMeanLoad: number;
  /** Share of the kept slots taken by the least used expert. */
  minShare: number;
  dropRate: number;
  tokensPerExpert: number[];
}

/** Test perplexity, one window per forward pass; for an MoE, each layer's load over the text. */
async function score(m: Loaded): Promise<{ perplexity: number; layers: LayerLoad[] }> {
  const recording = m.model.config.moe === undefined ? undefined : recordModelRoutings(m.model);
  try {
    const r = await perplexity(m.model, m.tokenizer, testText, { maxLength: seqLen, batchSize: 1 });
    const layers = (recording?.layers ?? []).map((l): LayerLoad => {
      const joined = concatRouteResults(l.results, l.numExperts);
      const lm = loadMetrics(joined, l.numExperts);
      return {
        block: l.block,
        loadCv: lm.loadCv,
        maxMeanLoad: lm.maxMeanLoad,
        minShare: lm.kept === 0 ? 0 : Math.min(...lm.tokensPerExpert) / lm.kept,
        dropRate: lm.dropRate,
        tokensPerExpert: Array.from(lm.tokensPerExpert),
      };
    });
    return { perplexity: r.perplexity, layers };
  } finally {
    recording?.restore();
  }
}

const mean = (xs: number[]) => xs.reduce((s, x) => s + x, 0) / xs.length;

interface ValidationPoint {
  step: number;
  validationLoss: number;
  /** [layers][experts] share of the validation batches' assignments. */
  expertLoad: number[][];
}

/** The validation points of a training log: a training-log.json, or the JSON lines a run printed. */
function validationPoints(path: string): ValidationPoint[] {
  if (path === '' || !existsSync(path)) return [];
  const text = readFileSync(path, 'utf8');
  let entries: Record<string, unknown>[];
  try {
    entries = JSON.parse(text).log;
  } catch {
    entries = text
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l));
  }
  return entries
    .filter((e) => typeof e.validationLoss === 'number' && Array.isArray(e.expertLoad))
    .map((e) => ({
      step: e.step as number,
      validationLoss: e.validationLoss as number,
      expertLoad: e.expertLoad as number[][],
    }));
}

/** Coefficient of variation and max / mean of one layer's shares. */
function spreadOf(shares: number[]): { cv: number; maxMean: number } {
  const m = mean(shares);
  const sd = Math.sqrt(mean(shares.map((x) => (x - m) ** 2)));
  return { cv: sd / m, maxMean: Math.max(...shares) / m };
}
const pooledDrop = (layers: LayerLoad[]) => mean(layers.map((l) => l.dropRate));

// 1 + 2. Perplexity and load balance.
const models: { label: string; dir: string; role: string }[] = [
  { label: 'dense tiny-lm (MLP 384)', dir: tinyLmPath(), role: 'equal active parameters' },
  ...(denseTotalDir === '' || !existsSync(join(denseTotalDir, 'config.json'))
    ? []
    : [{ label: 'dense, MLP 768', dir: resolve(denseTotalDir), role: 'equal total parameters' }]),
  { label: 'MoE 8 x 96, top-4, aux 0.01', dir: moeDir, role: 'the MoE tiny-lm' },
  ...(noAuxDir === '' || !existsSync(join(noAuxDir, 'config.json'))
    ? []
    : [{ label: 'MoE 8 x 96, top-4, no aux loss', dir: resolve(noAuxDir), role: 'aux loss off' }]),
];
const perplexityRows = [];
for (const entry of models) {
  const m = await load(entry.dir);
  const s = await score(m);
  say(`${entry.label}: perplexity ${s.perplexity.toFixed(3)}`);
  perplexityRows.push({
    ...entry,
    parameters: m.model.parameterCount(),
    activeParameters: activeParameters(m.model),
    training: trained(entry.dir),
    perplexity: s.perplexity,
    layers: s.layers,
  });
}

// 2b. Load balance during training, aux loss on and off, at the steps both runs reached.
const withAux = validationPoints(join(moeDir, 'training-log.json'));
const withoutAux = validationPoints(noAuxLog);
const trainingBalance = withAux
  .filter((p) => withoutAux.some((q) => q.step === p.step))
  .map((p) => {
    const q = withoutAux.find((x) => x.step === p.step)!;
    const summary = (v: ValidationPoint) => {
      const layers = v.expertLoad.map(spreadOf);
      return {
        validationLoss: v.validationLoss,
        meanCv: mean(layers.map((l) => l.cv)),
        worstMaxMean: Math.max(...layers.map((l) => l.maxMean)),
        minShare: Math.min(...v.expertLoad.flat()),
        layers: v.expertLoad,
      };
    };
    return { step: p.step, aux: summary(p), noAux: summary(q) };
  });

// 3. Capacity factor.
const capacityRows = [];
for (const entry of models.filter((e) => e.dir === moeDir || e.role === 'aux loss off')) {
  const m = await load(entry.dir);
  const { numExperts, expertsPerToken } = m.model.config.moe!;
  for (const factor of [0.5, 1, 1.25, 2, undefined]) {
    const restore =
      factor === undefined
        ? () => {}
        : swapRouters(m.model, () =>
            softmaxTopK({
              numExperts,
              k: expertsPerToken,
              capacity: { factor, convention: 'switch' },
            }),
          );
    try {
      const s = await score(m);
      const capacity =
        factor === undefined ? null : Math.floor((factor * seqLen * expertsPerToken) / numExperts);
      say(
        `${entry.label}, capacity ${factor ?? 'dropless'}: drop ${(100 * pooledDrop(s.layers)).toFixed(2)}%, perplexity ${s.perplexity.toFixed(3)}`,
      );
      capacityRows.push({
        model: entry.label,
        factor: factor ?? null,
        slotsPerExpert: capacity,
        dropRate: pooledDrop(s.layers),
        perplexity: s.perplexity,
      });
    } finally {
      restore();
    }
  }
}

// 4. STUN.
const calibIds = (await load(moeDir)).tokenizer.encode(calibText);
const calib: Tensor<'i32'>[] = calibrationWindows(calibIds, { samples: calibCount, seqLen, seed: 0 });
type Removal = { kind: 'none' } | { kind: 'stun'; lambda: number } | { kind: 'random'; seed: number };

async function stunRow(keep: number, removal: Removal, target: number) {
  const m = await load(moeDir);
  const E = m.model.config.moe!.numExperts;
  const original = expertWeightCounts(m.model).weights;
  if (removal.kind === 'stun')
    applyStun(m.model, await stunPlan(m.model, calib, { targetExperts: keep, lambda: removal.lambda }));
  if (removal.kind === 'random') {
    const rng = new Rng(removal.seed);
    m.model.removeExperts(
      m.model.params.blocks.map((b) => (b.mlp.kind === 'moe' ? Array.from(rng.sample(E, E - keep)) : [])),
    );
  }
  // Wanda on the experts left, to reach `target` of the original experts' weights.
  const unstructured = target === 0 ? 0 : 1 - (1 - target) / (keep / E);
  if (unstructured > 1e-9)
    await runRecipe(
      m.model,
      calib,
      { method: 'wanda', sparsity: unstructured, layers: { include: [EXPERT_LAYERS] } },
      {
        backend,
        reconstructionError: false,
      },
    );
  const s = await score(m);
  return {
    keep,
    removal,
    unstructured,
    expertSparsity: 1 - expertWeightCounts(m.model).nonzero / original,
    perplexity: s.perplexity,
  };
}

const stunRows: Awaited<ReturnType<typeof stunRow>>[] = [];
const E = (await load(moeDir)).model.config.moe!.numExperts;
for (const target of [0, 0.5, 0.75]) {
  for (const keep of [E, E - 1, E - 2, E / 2]) {
    const structured = 1 - keep / E;
    if (target !== 0 && target <= structured) continue; // nothing left for Wanda: the structured row
    if (target === 0 && keep === E) {
      stunRows.push(await stunRow(E, { kind: 'none' }, 0));
      continue;
    }
    if (keep === E) {
      stunRows.push(await stunRow(E, { kind: 'none' }, target));
      say(`wanda alone ${target}: ${stunRows.at(-1)!.perplexity.toFixed(3)}`);
      continue;
    }
    for (const lambda of [1, 0]) stunRows.push(await stunRow(keep, { kind: 'stun', lambda }, target));
    const random = [];
    for (let seed = 1; seed <= randomSeeds; seed++)
      random.push(await stunRow(keep, { kind: 'random', seed }, target));
    stunRows.push(...random);
    say(
      `keep ${keep}, target ${target}: STUN ${stunRows.at(-2 - random.length)!.perplexity.toFixed(3)} (lambda 0 ${stunRows.at(-1 - random.length)!.perplexity.toFixed(3)}), random mean ${mean(random.map((r) => r.perplexity)).toFixed(3)}`,
    );
  }
}

await backend.dispose();
const result = {
  command: `node tooling/tiny-lm/dist/moe-quality.js ${process.argv.slice(2).join(' ')}`.trim(),
  protocol: {
    text: 'tiny-lm/test.txt',
    windowTokens: seqLen,
    windowsPerPass: 1,
    calibration: { windows: calibCount, seed: 0 },
  },
  seconds: (performance.now() - t0) / 1000,
  perplexity: perplexityRows,
  trainingBalance,
  capacity: capacityRows,
  stun: stunRows,
};
mkdirSync(dirname(outPath), { recursive: true });
writeFileSync(`${outPath}.tmp`, `${JSON.stringify(result, null, 1)}\n`);
renameSync(`${outPath}.tmp`, outPath);

// Markdown.
const f = (x: number, d = 2) => x.toFixed(d);
const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
const lines: string[] = [`# MoE tiny-lm tables\n`, `\`${result.command}\` (${f(result.seconds, 0)} s)\n`];
lines.push(
  markdownTable(
    ['model', 'compared as', 'parameters', 'active per token', 'training steps (tokens)', 'test perplexity'],
    perplexityRows.map((r) => [
      r.label,
      r.role,
      r.parameters.toLocaleString('en-US'),
      r.activeParameters.toLocaleString('en-US'),
      r.training === null ? '-' : `${r.training.steps} (${(r.training.tokens / 1e6).toFixed(1)} M)`,
      f(r.perplexity),
    ]),
  ),
);
const moeRows = perplexityRows.filter((r) => r.layers.length > 0);
if (moeRows.length > 0) {
  lines.push('\nLoad balance on the test text (own router, dropless), per layer:\n');
  lines.push(
    markdownTable(
      ['model', 'block', 'load CV', 'max / mean', 'least used expert share', 'assignments per expert'],
      moeRows.flatMap((r) =>
        r.layers.map((l) => [
          r.label,
          String(l.block),
          f(l.loadCv, 3),
          f(l.maxMeanLoad),
          pct(l.minShare),
          l.tokensPerExpert.join(' '),
        ]),
      ),
    ),
  );
}
if (trainingBalance.length > 0) {
  lines.push(
    '\nLoad balance during training (validation batches; 8 experts, so an even share is 12.5%), aux 0.01 against none, same schedule:\n',
  );
  lines.push(
    markdownTable(
      [
        'step',
        'aux 0.01: validation loss',
        'mean load CV',
        'worst max / mean',
        'least share',
        'no aux: validation loss',
        'mean load CV',
        'worst max / mean',
        'least share',
      ],
      trainingBalance.map((r) => [
        String(r.step),
        f(r.aux.validationLoss, 3),
        f(r.aux.meanCv, 3),
        f(r.aux.worstMaxMean),
        pct(r.aux.minShare),
        f(r.noAux.validationLoss, 3),
        f(r.noAux.meanCv, 3),
        f(r.noAux.worstMaxMean),
        pct(r.noAux.minShare),
      ]),
    ),
  );
}
lines.push('\nCapacity factor (Switch rule per 128-token window; dropped slots ride the residual):\n');
lines.push(
  markdownTable(
    ['model', 'capacity factor', 'slots per expert', 'drop rate', 'test perplexity'],
    capacityRows.map((r) => [
      r.model,
      r.factor === null ? 'dropless' : String(r.factor),
      r.slotsPerExpert === null ? '-' : String(r.slotsPerExpert),
      pct(r.dropRate),
      f(r.perplexity),
    ]),
  ),
);
lines.push("\nSTUN on the MoE tiny-lm (Wanda on the experts left; sparsity of the experts' weights):\n");
const label = (r: (typeof stunRows)[number]) =>
  r.removal.kind === 'none'
    ? r.unstructured === 0
      ? 'dense (all experts)'
      : 'Wanda alone'
    : r.removal.kind === 'stun'
      ? `STUN lambda ${r.removal.lambda}`
      : `random experts, seed ${r.removal.seed}`;
lines.push(
  markdownTable(
    ['experts kept', 'removal', 'Wanda on the rest', "experts' weights removed", 'test perplexity'],
    stunRows.map((r) => [
      `${r.keep} of ${E}`,
      label(r),
      r.unstructured === 0 ? '-' : pct(r.unstructured),
      pct(r.expertSparsity),
      f(r.perplexity),
    ]),
  ),
);
// The same, one row per (experts kept, Wanda share): STUN's two lambdas beside random removal.
lines.push('\nSTUN in short (perplexity; random: mean of the seeds, with their range):\n');
const groups = new Map<string, (typeof stunRows)[number][]>();
for (const r of stunRows) {
  const key = `${r.keep}/${r.unstructured.toFixed(4)}`;
  groups.set(key, [...(groups.get(key) ?? []), r]);
}
lines.push(
  markdownTable(
    [
      'experts kept',
      'Wanda on the rest',
      "experts' weights removed",
      'STUN lambda 1',
      'STUN lambda 0',
      'random experts',
    ],
    [...groups.values()].map((g) => {
      const first = g[0]!;
      const stun = (lambda: number) =>
        g.find((r) => r.removal.kind === 'stun' && r.removal.lambda === lambda);
      const random = g.filter((r) => r.removal.kind === 'random').map((r) => r.perplexity);
      const none = g.find((r) => r.removal.kind === 'none');
      return [
        `${first.keep} of ${E}`,
        first.unstructured === 0 ? '-' : pct(first.unstructured),
        pct(first.expertSparsity),
        none !== undefined
          ? `${f(none.perplexity)} (${first.unstructured === 0 ? 'dense' : 'Wanda alone'})`
          : f(stun(1)!.perplexity),
        none !== undefined ? '-' : f(stun(0)!.perplexity),
        random.length === 0
          ? '-'
          : `${f(mean(random))} (${f(Math.min(...random))}-${f(Math.max(...random))})`,
      ];
    }),
  ),
);
const mdPath = outPath.replace(/\.json$/, '.md');
writeFileSync(`${mdPath}.tmp`, `${lines.join('\n')}\n`);
renameSync(`${mdPath}.tmp`, mdPath);
console.log(lines.join('\n'));
console.log(`\nwrote ${outPath} and ${mdPath}`);
