import { availableParallelism } from 'node:os';
import { Tensor } from '@sparsekit/core';
import { calibrationWindows } from '@sparsekit/eval-harness';
import type { LoadedModel } from '@sparsekit/models/node';
import {
  ATTENTION_PATTERNS,
  calibrateDoubleSparsity,
  createBlockMask,
  decodeLayerStep,
  KV_POLICIES,
  type LabelChannels,
  labelChannels,
  makePattern,
  PATTERN_NAMES,
  type PatternOptions,
  POLICY_NAMES,
  policyEntry,
  policyPerplexity,
  poolSelectionStats,
  recordSelections,
  syntheticLayer,
} from '@sparsekit/sparse-attention';
import { loadLabelChannels, saveLabelChannels } from '@sparsekit/sparse-attention/node';
import { actionOf, choiceFlag, type Flags, numberFlag, stringFlag, UsageError } from '../args.js';
import { BACKEND_FLAG, BACKEND_HELP, type CpuBackend, openBackend } from '../backend.js';
import type { Command } from '../command.js';
import { checkKnownText, defaultText, loadModel, modelDir, readText, requireTokenizer } from '../model-io.js';
import { formatBytes, table, type Ui } from '../ui.js';

const ACTIONS = ['show', 'eval', 'bench'] as const;
const SPEED_POLICIES = KV_POLICIES.filter((p) => p.kind === 'select').map((p) => p.name);

export const attentionCommand: Command = {
  name: 'attention',
  summary: 'sparse attention: draw block masks, evaluate KV policies, time decode attention',
  positionals: 1,
  help: `Usage: sparsekit attention show  [--pattern P] [--seq N] [--block B] [pattern flags]
       sparsekit attention eval  --policy P --budget N [--model DIR] [--text FILE] [--windows N] [--prefill N]
       sparsekit attention bench [--policy P] [--context N] [--budget N] [--kv-heads N] [--group N] [--dim N]

show: build a block mask (FlexAttention's BlockMask, without the S x S mask) and draw it: full blocks
  █, partial ░, skipped blank; prints its sparsity, the memory of its block lists and the build time.
${ATTENTION_PATTERNS.map((p) => `    ${p.name.padEnd(12)} ${p.summary}`).join('\n')}
eval: perplexity of the model decoding under a KV policy at a token budget per key/value head: each
  window's first --prefill tokens run densely, then every token is one decode step under the policy;
  the decoded tokens are scored, and the same model without a policy is scored the same way. For
  selection policies, also the attention recall (probability mass of the keys read) and the relative
  error of the attention output against exact attention, per decode step.
${KV_POLICIES.map((p) => `    ${p.name.padEnd(16)} ${p.summary}`).join('\n')}
bench: one layer's decode attention on the CPU backend at --context tokens (random keys, in the
  backend's memory), dense against --policy at --budget tokens, in the same run.

Flags:
  --pattern P          show: ${PATTERN_NAMES.join(' | ')} (default streaming)
  --seq N / --block B  show: tokens (default 8192) and block size (default 128)
  --window W           show: window in tokens (bigbird: in blocks); --sinks N; --doc-length N;
                       --globals i,j; --random-blocks R; --pattern-block N; --seed S
  --max-blocks N       show: at most N blocks drawn per side (default 64; larger masks are sampled)
  --policy P           eval: ${POLICY_NAMES.join(' | ')}; bench: ${SPEED_POLICIES.join(' | ')} (default quest)
  --budget N           tokens per lane: read per step (quest, double-sparsity) or held (h2o, streaming,
                       snapkv); bench default: context / 16
  --model DIR          eval: Hugging Face folder (default: the bundled tiny-lm)
  --text FILE          eval: text to score (default: the model's test text)
  --windows N          eval: windows of the model's context scored (default 8)
  --prefill N          eval: prompt tokens per window run densely (default 32)
  --page-size N        eval: the KV cache's page size (Quest's pages; default 16)
  --channels FILE      eval, double-sparsity: label channels (a file from --save-channels or the
                       reference's config JSON); otherwise calibrated on the model's calibration text
  --save-channels FILE eval, double-sparsity: write the calibrated channels (atomically)
  --no-dense           eval: skip the dense row
  --context N          bench: tokens per lane (default 32768); --kv-heads N (8), --group N (4), --dim N (128)
  --reps N             bench: timed steps per subject (default 20)
  --threads T          kernel threads (default: all cores)
${BACKEND_HELP}
  --json               print the result as JSON

Examples:
  sparsekit attention show --pattern streaming --seq 131072 --window 4096
  sparsekit attention eval --policy quest --budget 32 --page-size 4
  sparsekit attention eval --policy double-sparsity --budget 32 --save-channels ds-channels.json
  sparsekit attention bench --policy quest --context 32768`,
  flags: {
    ...BACKEND_FLAG,
    pattern: { type: 'string' },
    seq: { type: 'string' },
    block: { type: 'string' },
    window: { type: 'string' },
    sinks: { type: 'string' },
    'doc-length': { type: 'string' },
    globals: { type: 'string' },
    'random-blocks': { type: 'string' },
    'pattern-block': { type: 'string' },
    seed: { type: 'string' },
    'max-blocks': { type: 'string' },
    policy: { type: 'string' },
    budget: { type: 'string' },
    model: { type: 'string' },
    text: { type: 'string' },
    windows: { type: 'string' },
    prefill: { type: 'string' },
    'page-size': { type: 'string' },
    channels: { type: 'string' },
    'save-channels': { type: 'string' },
    'no-dense': { type: 'boolean' },
    context: { type: 'string' },
    'kv-heads': { type: 'string' },
    group: { type: 'string' },
    dim: { type: 'string' },
    reps: { type: 'string' },
    threads: { type: 'string' },
  },
  async run({ flags, positionals, ui }) {
    const action = actionOf('attention', positionals, ACTIONS);
    if (action === 'show') return show(flags, ui);
    const threads = numberFlag('attention', flags, 'threads', availableParallelism(), {
      integer: true,
      min: 1,
    });
    const backend = await openBackend('attention', flags, ui, threads);
    try {
      return action === 'eval' ? await evaluate(flags, backend, ui) : bench(flags, backend, ui);
    } finally {
      await backend.dispose();
    }
  },
};

type Backend = CpuBackend;

const int = (flags: Flags, name: string, fallback: number, min = 1, max?: number) =>
  numberFlag('attention', flags, name, fallback, {
    integer: true,
    min,
    ...(max === undefined ? {} : { max }),
  });

function show(flags: Flags, ui: Ui) {
  const name = choiceFlag('attention', flags, 'pattern', PATTERN_NAMES, 'streaming');
  const seq = int(flags, 'seq', 8192, 1, 1 << 22);
  const blockSize = int(flags, 'block', 128);
  const globals = stringFlag(flags, 'globals');
  const options: PatternOptions = {};
  const setInt = (
    flag: string,
    key: 'window' | 'sinks' | 'docLength' | 'randomBlocks' | 'patternBlock' | 'seed',
    min: number,
  ) => {
    if (stringFlag(flags, flag) !== undefined) options[key] = int(flags, flag, 0, min);
  };
  setInt('window', 'window', 1);
  setInt('sinks', 'sinks', 0);
  setInt('doc-length', 'docLength', 1);
  setInt('random-blocks', 'randomBlocks', 0);
  setInt('pattern-block', 'patternBlock', 1);
  setInt('seed', 'seed', 0);
  if (globals !== undefined) {
    const list = globals.split(',').map((g) => Number(g.trim()));
    if (list.some((g) => !Number.isInteger(g) || g < 0 || g >= seq))
      throw new UsageError(`--globals must be positions in [0, ${seq}), got "${globals}"`, 'attention');
    options.globals = list;
  }
  const { mod } = makePattern(name, options, seq);
  const start = performance.now();
  const bm = createBlockMask(mod, { qLen: seq, kvLen: seq, blockSize });
  const buildMs = performance.now() - start;
  const drawing = bm.toString(int(flags, 'max-blocks', 64));
  const sparsity = bm.sparsity();
  ui.say(drawing);
  ui.say(
    `\n${name}, ${seq} tokens, ${blockSize}-token blocks: sparsity ${sparsity.toFixed(2)}% (blocks skipped), ` +
      `block lists ${formatBytes(bm.bytes)} (a dense boolean mask: ${formatBytes(seq * seq)}), built in ${buildMs.toFixed(1)} ms`,
  );
  return {
    pattern: name,
    options,
    seq,
    blockSize,
    sparsity,
    bytes: bm.bytes,
    denseMaskBytes: seq * seq,
    buildMs,
    drawing,
  };
}

async function channelsFor(flags: Flags, loaded: LoadedModel, dir: string, ui: Ui): Promise<LabelChannels> {
  const path = stringFlag(flags, 'channels');
  if (path !== undefined) return loadLabelChannels(path);
  const tokenizer = requireTokenizer(loaded, dir);
  const text = defaultText('calibration', dir, '--channels');
  const seqLen = Math.min(128, loaded.model.maxSequenceLength);
  const batches = calibrationWindows(tokenizer.encode(text), { samples: 16, seqLen, mode: 'consecutive' });
  const importance = await calibrateDoubleSparsity(loaded.model, batches, {
    onProgress: ui.progress('calibrate'),
  });
  ui.done();
  const save = stringFlag(flags, 'save-channels');
  if (save !== undefined) {
    await saveLabelChannels(save, importance);
    ui.say(`label channels -> ${save}`);
  }
  return labelChannels(importance, 'qk');
}

async function evaluate(flags: Flags, backend: Backend, ui: Ui) {
  const policyName = stringFlag(flags, 'policy');
  if (policyName === undefined)
    throw new UsageError(`--policy is required (${POLICY_NAMES.join(', ')})`, 'attention');
  const entry = KV_POLICIES.find((p) => p.name === policyName);
  if (entry === undefined)
    throw new UsageError(`unknown --policy "${policyName}"; use ${POLICY_NAMES.join(', ')}`, 'attention');
  if (stringFlag(flags, 'budget') === undefined)
    throw new UsageError('--budget is required (tokens per lane)', 'attention');
  const dir = modelDir(stringFlag(flags, 'model'));
  const loaded = await loadModel(dir, backend);
  const model = loaded.model;
  const context = model.maxSequenceLength;
  const budget = int(flags, 'budget', 0, 1);
  const prefill = int(flags, 'prefill', Math.min(32, context - 1), 1, context - 1);
  const pageSize = int(flags, 'page-size', 16);
  const tokenizer = requireTokenizer(loaded, dir);
  const textPath = stringFlag(flags, 'text');
  const text = textPath === undefined ? defaultText('test', dir, '--text') : readText(textPath, '--text');
  const ids = tokenizer.encode(text);
  checkKnownText(tokenizer, ids, 'evaluation text');
  const available = Math.floor(ids.length / context);
  if (available === 0)
    throw new UsageError(
      `the text has ${ids.length} tokens, fewer than one window of ${context}`,
      'attention',
    );
  const count = Math.min(int(flags, 'windows', 8), available);
  const windows = Array.from(
    { length: count },
    (_, w) => new Tensor('i32', [1, context], Int32Array.from(ids.slice(w * context, (w + 1) * context))),
  );
  const channels = entry.needsChannels ? await channelsFor(flags, loaded, dir, ui) : undefined;
  const options = { prefill, pageSize };
  const dense =
    flags['no-dense'] === true
      ? undefined
      : policyPerplexity(model, windows, () => undefined, { ...options, onProgress: ui.progress('dense') });
  const recorders: Array<ReturnType<typeof recordSelections>> = [];
  const make = () => {
    const policy = entry.make({ budget, pageSize, ...(channels === undefined ? {} : { channels }) });
    if (entry.kind === 'evict') return policy;
    const recorder = recordSelections(policy);
    recorders.push(recorder);
    return recorder.policy;
  };
  const sparse = policyPerplexity(model, windows, make, { ...options, onProgress: ui.progress(entry.name) });
  ui.done();
  const stats = recorders.length === 0 ? undefined : poolSelectionStats(recorders.map((r) => r.stats()));
  const rows = [
    ...(dense === undefined ? [] : [['dense', '-', dense.perplexity.toFixed(2), '-', '-', '-']]),
    [
      entry.name,
      String(budget),
      sparse.perplexity.toFixed(2),
      stats === undefined ? '-' : stats.recall.toFixed(3),
      stats === undefined ? '-' : stats.relativeError.toFixed(3),
      stats === undefined ? '-' : `${(100 * stats.density).toFixed(0)}%`,
    ],
  ];
  ui.say(
    `${dir}: ${count} windows of ${context} tokens, ${prefill} prompt tokens each (dense), ${sparse.tokens} decoded tokens scored\n`,
  );
  ui.say(table(['policy', 'budget', 'perplexity', 'recall', 'output rel. error', 'share read'], rows));
  return {
    model: dir,
    policy: entry.name,
    budget,
    windows: count,
    prefill,
    pageSize,
    scoredTokens: sparse.tokens,
    perplexity: sparse.perplexity,
    densePerplexity: dense?.perplexity ?? null,
    selection: stats ?? null,
  };
}

function bench(flags: Flags, backend: Backend, ui: Ui) {
  const name = choiceFlag('attention', flags, 'policy', SPEED_POLICIES, 'quest');
  const context = int(flags, 'context', 32768, 16, 1 << 20);
  const kvHeads = int(flags, 'kv-heads', 8, 1, 64);
  const group = int(flags, 'group', 4, 1, 64);
  const dim = int(flags, 'dim', 128, 4, 1024);
  if (dim % 4 !== 0) throw new UsageError('--dim must be a multiple of 4', 'attention');
  const budget = int(flags, 'budget', Math.max(1, Math.floor(context / 16)), 1, context);
  const reps = int(flags, 'reps', 20, 1, 10_000);
  const layer = syntheticLayer(backend, { context, kvHeads, group, headDim: dim });
  const entry = policyEntry(name);
  const channels: LabelChannels = {
    source: 'k',
    headDim: dim,
    layers: Array.from({ length: 3 }, () =>
      Array.from({ length: kvHeads }, () => Int32Array.from({ length: dim }, (_, i) => i)),
    ),
  };
  const policy = entry.make({ budget, backend, channels });
  try {
    const subjects = [
      { subject: 'dense', policy: undefined },
      { subject: name, policy },
    ];
    const read = subjects.map((s) => decodeLayerStep(backend, layer, s.policy));
    // Warm each path (the policy's summaries are built on its first step; the code is compiled).
    for (let w = 0; w < 10; w++) for (const s of subjects) decodeLayerStep(backend, layer, s.policy);
    const times = subjects.map(() => [] as number[]);
    const progress = ui.progress('bench');
    for (let r = 0; r < reps; r++) {
      subjects.forEach((s, i) => {
        const start = performance.now();
        decodeLayerStep(backend, layer, s.policy);
        times[i]!.push(performance.now() - start);
      });
      progress({ stage: 'bench', current: r + 1, total: reps, unit: 'round' });
    }
    ui.done();
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    const ms = times.map(median);
    ui.say(
      `one layer's decode attention: ${kvHeads} key/value heads x ${group} query heads, head dim ${dim}, ${context} tokens; ${backend.name}, ${backend.threads} threads; median of ${reps}\n`,
    );
    ui.say(
      table(
        ['subject', 'tokens read', 'ms', 'vs dense'],
        subjects.map((s, i) => [
          s.subject,
          read[i]!.toFixed(0),
          ms[i]!.toFixed(3),
          `${(ms[0]! / ms[i]!).toFixed(2)}x`,
        ]),
      ),
    );
    return {
      context,
      kvHeads,
      group,
      dim,
      budget,
      threads: backend.threads,
      reps,
      rows: subjects.map((s, i) => ({
        subject: s.subject,
        tokensRead: read[i],
        ms: ms[i],
        vsDense: ms[0]! / ms[i]!,
      })),
    };
  } finally {
    policy.reset?.();
    layer.dispose();
  }
}
