/**
 * Decode tokens/s of a mixture-of-experts model against dense models of equal total and of equal
 * active parameters, measured in one run on the wasm backend, plus one MoE layer on a batch of
 * tokens under dropless and capacity dispatch, and that layer's routing through the expert-parallel
 * cost model (bytes and loads on paper, untimed).
 *
 *   pnpm bench            (in this package)
 *   node build/bench/decode.js [--quick] [--hidden 512] [--layers 4] [--width 4096] [--experts 8]
 *     [--k 2] [--vocab 512] [--prompt 16] [--new 48] [--rounds 7] [--batch 64] [--budget-ms 3000]
 *     [--threads N] [--seed 1] [--out bench/results/decode.json]
 *
 * The models are Llama-shaped (RMSNorm, RoPE, SwiGLU, 8 query heads of 64 over 2 key/value heads)
 * with seeded random weights: speed does not depend on training. With MLP width W, the MoE has
 * `experts` experts of width W / 4 each (W / 4 * 8 = 2W channels in all) behind a softmax top-k
 * router; the dense model of equal total parameters has MLP width experts * W / 4 (2W at the
 * defaults), the dense model of equal active parameters k * W / 4 (W / 2). At the defaults the
 * MLPs hold 94% of the equal-total model's weights, so decode (which reads every weight it uses
 * once per token) is dominated by MLP weights. `--quick` decodes 16 tokens a round over 3 rounds
 * (48 over 7 otherwise) and gives the layer timings a third of the time.
 */
import * as os from 'node:os';
import {
  flag,
  machineFacts,
  markdownTable,
  measureRounds,
  median,
  numberOption,
  option,
  ratio,
  reportResults,
} from '@sparsekit/bench';
import { Rng, type Router, Tensor } from '@sparsekit/core';
import {
  type BlockParams,
  backendRef,
  denseMatrix,
  generate,
  Linear,
  type ModelConfig,
  type ModelParams,
  TransformerLM,
} from '@sparsekit/models';
import {
  type Capacity,
  dispatch,
  expertParallelCost,
  gatedExpertFlops,
  loadMetrics,
  paddedDispatch,
  type RouteResult,
  softmaxTopK,
} from '@sparsekit/moe-router';
import { createWasmBackend } from '@sparsekit/sparse-formats';

const quick = flag('quick');
const hidden = numberOption('hidden', 512);
const layers = numberOption('layers', 4);
const width = numberOption('width', 4096);
const numExperts = numberOption('experts', 8);
const k = numberOption('k', 2);
const vocab = numberOption('vocab', 512);
const promptLength = numberOption('prompt', 16);
const newTokens = numberOption('new', quick ? 16 : 48);
const rounds = numberOption('rounds', quick ? 3 : 7);
const batch = numberOption('batch', 64);
const budgetMs = numberOption('budget-ms', quick ? 1000 : 3000);
const threads = numberOption('threads', os.availableParallelism());
const seed = numberOption('seed', 1);
const outPath = option('out', 'bench/results/decode.json');
const HEADS = 8;
const KV_HEADS = 2;
const HEAD_DIM = hidden / HEADS;
const expertWidth = width / 4;
if (!Number.isInteger(expertWidth) || !Number.isInteger(HEAD_DIM))
  throw new Error('--width must be a multiple of 4 and --hidden of 8');

const backend = await createWasmBackend({ threads });
const backends = backendRef(backend);
type Gated = Extract<BlockParams['mlp'], { kind: 'gated' }>;

function linear(rng: Rng, name: string, rows: number, cols: number, std = 0.02): Linear {
  return new Linear(name, denseMatrix(rng.normalArray(rows * cols, 0, std), rows, cols), undefined, backends);
}

function gated(rng: Rng, name: string, inner: number): Gated {
  return {
    kind: 'gated',
    gate: linear(rng, `${name}.gate_proj`, inner, hidden),
    up: linear(rng, `${name}.up_proj`, inner, hidden),
    down: linear(rng, `${name}.down_proj`, hidden, inner),
  };
}

type Mlp = { kind: 'dense'; inner: number } | { kind: 'moe'; capacity: Capacity };

/** A Llama-shaped model with seeded random weights (the same attention and embeddings for every MLP). */
function syntheticModel(mlp: Mlp): TransformerLM {
  const rng = new Rng(seed);
  const inner = mlp.kind === 'dense' ? mlp.inner : expertWidth;
  const config: ModelConfig = {
    family: 'llama',
    vocabSize: vocab,
    hiddenSize: hidden,
    numLayers: layers,
    numHeads: HEADS,
    numKvHeads: KV_HEADS,
    headDim: HEAD_DIM,
    intermediateSize: inner,
    maxPositions: promptLength + newTokens + 8,
    norm: 'rmsnorm',
    normEps: 1e-5,
    preNorm: true,
    positions: 'rotary',
    positionOffset: 0,
    ropeTheta: 10000,
    activation: 'silu',
    gatedMlp: true,
    attentionBias: false,
    mlpBias: false,
    tieEmbeddings: false,
    wordEmbedDim: hidden,
  };
  const ones = () => ({ weight: new Float32Array(hidden).fill(1) });
  const blocks: BlockParams[] = Array.from({ length: layers }, (_, i) => {
    const name = `model.layers.${i}`;
    const attention = {
      attentionNorm: ones(),
      q: linear(rng, `${name}.self_attn.q_proj`, hidden, hidden),
      k: linear(rng, `${name}.self_attn.k_proj`, KV_HEADS * HEAD_DIM, hidden),
      v: linear(rng, `${name}.self_attn.v_proj`, KV_HEADS * HEAD_DIM, hidden),
      o: linear(rng, `${name}.self_attn.o_proj`, hidden, hidden),
      mlpNorm: ones(),
    };
    if (mlp.kind === 'dense') return { ...attention, mlp: gated(rng, `${name}.mlp`, mlp.inner) };
    const router: Router = softmaxTopK({ numExperts, k, capacity: mlp.capacity });
    return {
      ...attention,
      mlp: {
        kind: 'moe',
        gate: linear(rng, `${name}.block_sparse_moe.gate`, numExperts, hidden, 1 / Math.sqrt(hidden)),
        router,
        experts: Array.from({ length: numExperts }, (_, e) =>
          gated(rng, `${name}.block_sparse_moe.experts.${e}`, expertWidth),
        ),
      },
    };
  });
  const params: ModelParams = {
    embedTokens: rng.normalArray(vocab * hidden, 0, 1),
    blocks,
    finalNorm: ones(),
    lmHead: linear(rng, 'lm_head', vocab, hidden),
  };
  return new TransformerLM(config, params, backends);
}

// Parameters: attention and embeddings are shared; per block the MLP holds 3 * hidden * inner.
const attentionParams = layers * (2 * hidden * hidden + 2 * KV_HEADS * HEAD_DIM * hidden + 2 * hidden);
const outsideParams = attentionParams + 2 * vocab * hidden + hidden;
const mlpParams = (inner: number) => layers * 3 * hidden * inner;
const gateParams = layers * numExperts * hidden;
interface Variant {
  label: string;
  mlp: Mlp;
  total: number;
  /** Parameters read per decoded token (the embedding row aside: the whole table is counted). */
  active: number;
}
const moeTotal = outsideParams + gateParams + mlpParams(numExperts * expertWidth);
const moeActive = outsideParams + gateParams + mlpParams(k * expertWidth);
const variants: Variant[] = [
  {
    label: `dense, equal total (MLP ${numExperts * expertWidth})`,
    mlp: { kind: 'dense', inner: numExperts * expertWidth },
    total: outsideParams + mlpParams(numExperts * expertWidth),
    active: outsideParams + mlpParams(numExperts * expertWidth),
  },
  {
    label: `moe ${numExperts}x${expertWidth} top-${k}, dropless`,
    mlp: { kind: 'moe', capacity: 'dropless' },
    total: moeTotal,
    active: moeActive,
  },
  {
    label: `moe ${numExperts}x${expertWidth} top-${k}, capacity tutel 1.25`,
    mlp: { kind: 'moe', capacity: { factor: 1.25, convention: 'tutel' } },
    total: moeTotal,
    active: moeActive,
  },
  {
    label: `dense, equal active (MLP ${k * expertWidth})`,
    mlp: { kind: 'dense', inner: k * expertWidth },
    total: outsideParams + mlpParams(k * expertWidth),
    active: outsideParams + mlpParams(k * expertWidth),
  },
];
const mlpShare = mlpParams(numExperts * expertWidth) / variants[0]!.total;
console.log(
  `decode, ${layers} layers, hidden ${hidden}, vocab ${vocab}; ${os.cpus()[0]?.model ?? 'cpu'}, ` +
    `${backend.threads} threads; MLP share of the equal-total model's weights ${(100 * mlpShare).toFixed(1)}%`,
);

// Decode: every model is built first, then measured round-robin (one generation each per round,
// in a rotated order), so drift on a shared machine hits them alike; medians over rounds.
const models = variants.map((v) => syntheticModel(v.mlp));
models.forEach((m, i) => {
  if (m.parameterCount() !== variants[i]!.total)
    throw new Error(
      `${variants[i]!.label}: ${m.parameterCount()} parameters, expected ${variants[i]!.total}`,
    );
});
const prompt = Array.from({ length: promptLength }, (_, i) => (i * 37 + 11) % vocab);
const decode = variants.map((): number[] => []);
const prefill = variants.map((): number[] => []);
for (const m of models) generate(m, prompt, { maxNewTokens: 4, stopTokens: [] });
for (let r = 0; r < rounds; r++) {
  for (let j = 0; j < models.length; j++) {
    const i = (j + r) % models.length;
    const g = generate(models[i]!, prompt, { maxNewTokens: newTokens, stopTokens: [] });
    decode[i]!.push(g.decodeTokensPerSecond);
    prefill[i]!.push(g.prefillTokensPerSecond);
  }
  console.log(`round ${r + 1}/${rounds}`);
}
const decodeRows = variants.map((v, i) => ({
  model: v.label,
  totalParams: v.total,
  activeParams: v.active,
  decodeTokensPerSecond: median(decode[i]!),
  prefillTokensPerSecond: median(prefill[i]!),
  decodeRounds: decode[i]!,
}));
const denseTotal = decodeRows[0]!;
const denseActive = decodeRows[3]!;

// One MoE layer on `batch` tokens (a prefill chunk, or a batch of decoding sequences): block 0's
// experts, its router gate, four dispatches. Each call routes (so dropping over capacity is timed),
// runs every expert on its rows with the wasm kernels, and combines.
const moe = models[1]!.params.blocks[0]!.mlp as Extract<BlockParams['mlp'], { kind: 'moe' }>;
const experts = moe.experts as Gated[];
const x = new Rng(seed + 1).normalArray(batch * hidden);
const logits = moe.gate.forward(x, batch);
const input = {
  hidden: new Tensor('f32', [batch, hidden], x),
  logits: new Tensor('f32', [batch, numExperts], logits),
  block: 0,
};

function runExpert(e: number, rows: Float32Array, n: number): Float32Array {
  const { gate, up, down } = experts[e]!;
  const g = gate.forward(rows, n);
  const u = up.forward(rows, n);
  for (let i = 0; i < g.length; i++) g[i] = (g[i]! / (1 + Math.exp(-g[i]!))) * u[i]!;
  return down.forward(g, n);
}

interface LayerCase {
  label: string;
  capacity: Capacity;
  padded: boolean;
}
const layerCases: LayerCase[] = [
  { label: 'dropless, grouped', capacity: 'dropless', padded: false },
  { label: 'capacity switch 1.0, dropped, grouped', capacity: { factor: 1 }, padded: false },
  { label: 'capacity switch 1.25, dropped, padded', capacity: { factor: 1.25 }, padded: true },
  {
    label: 'capacity tutel 0 (max load), padded',
    capacity: { factor: 0, convention: 'tutel' },
    padded: true,
  },
];
const stats = layerCases.map(() => ({ rows: 0, dropRate: 0, capacity: 0 }));
function layerCall(c: LayerCase, i: number): Float32Array {
  const routing = softmaxTopK({ numExperts, k, capacity: c.capacity }).route(input) as RouteResult;
  const out = new Float32Array(batch * hidden);
  let rows = 0;
  if (!c.padded) {
    const grouped = dispatch(routing, numExperts);
    for (let e = 0; e < numExperts; e++) {
      const [r0, r1] = [grouped.offsets[e]!, grouped.offsets[e + 1]!];
      if (r1 === r0) continue;
      const xs = new Float32Array((r1 - r0) * hidden);
      for (let r = r0; r < r1; r++)
        xs.set(x.subarray(grouped.tokens[r]! * hidden, (grouped.tokens[r]! + 1) * hidden), (r - r0) * hidden);
      const y = runExpert(e, xs, r1 - r0);
      for (let r = r0; r < r1; r++) {
        const [t, w] = [grouped.tokens[r]!, grouped.weights[r]!];
        for (let d = 0; d < hidden; d++) out[t * hidden + d]! += w * y[(r - r0) * hidden + d]!;
      }
    }
    rows = grouped.tokens.length;
  } else {
    const cap = routing.capacity ?? 0;
    const grid = paddedDispatch(routing, numExperts, cap);
    for (let e = 0; e < numExperts; e++) {
      if (cap === 0) continue;
      const xs = new Float32Array(cap * hidden); // padding rows stay zero, and are computed
      for (let p = 0; p < cap; p++) {
        const t = grid.tokens[e * cap + p]!;
        if (t >= 0) xs.set(x.subarray(t * hidden, (t + 1) * hidden), p * hidden);
      }
      const y = runExpert(e, xs, cap);
      for (let p = 0; p < cap; p++) {
        const slot = grid.slots[e * cap + p]!;
        if (slot < 0) continue;
        const [t, w] = [grid.tokens[e * cap + p]!, routing.weights[slot]!];
        for (let d = 0; d < hidden; d++) out[t * hidden + d]! += w * y[p * hidden + d]!;
      }
    }
    rows = numExperts * cap;
  }
  stats[i] = { rows, dropRate: loadMetrics(routing, numExperts).dropRate, capacity: routing.capacity ?? 0 };
  return out;
}
const layerTimes = await measureRounds(
  layerCases.map((c, i) => ({ copies: 1, call: () => layerCall(c, i) })),
  { budgetMs, minReps: 3, maxReps: 500, rounds },
);
const dropless = layerTimes[0]!.coldMs;
const layerRows = layerCases.map((c, i) => ({
  dispatch: c.label,
  capacity: c.capacity === 'dropless' ? null : stats[i]!.capacity,
  rowsComputed: stats[i]!.rows,
  dropRate: stats[i]!.dropRate,
  ms: layerTimes[i]!.coldMs,
  droplessOver: dropless / layerTimes[i]!.coldMs,
}));

// The same 64-token dropless routing spread over devices, on paper (bf16 rows on the wire): no
// timing, the bytes and loads `expertParallelCost` predicts (the simulation's tests check them).
const layerRouting = softmaxTopK({ numExperts, k }).route(input);
const parallelRows = [2, 4, 8]
  .filter((d) => d <= numExperts)
  .flatMap((devices) =>
    (['round-robin', 'contiguous'] as const).map((placement) => {
      const c = expertParallelCost(layerRouting, {
        numExperts,
        devices,
        placement,
        width: hidden,
        bytesPerValue: 2,
        expertFlops: gatedExpertFlops(hidden, expertWidth),
      });
      return {
        devices,
        placement,
        dispatchBytes: c.allToAll.dispatch,
        maxSentBytes: Math.max(...c.sentBytes),
        localShare: c.localShare,
        rowMaxOverMean: c.rowLoad.maxOverMean,
        flopMaxOverMean: c.flopLoad.maxOverMean,
      };
    }),
  );

const mParams = (n: number) => (n / 1e6).toFixed(2);
const table = [
  markdownTable(
    [
      'model',
      'total params (M)',
      'active params (M)',
      'total / active',
      'decode tok/s',
      'vs dense equal total',
      'vs dense equal active',
      'prefill tok/s',
    ],
    decodeRows.map((r) => [
      r.model,
      mParams(r.totalParams),
      mParams(r.activeParams),
      ratio(r.totalParams / r.activeParams),
      r.decodeTokensPerSecond.toFixed(1),
      ratio(r.decodeTokensPerSecond / denseTotal.decodeTokensPerSecond),
      ratio(r.decodeTokensPerSecond / denseActive.decodeTokensPerSecond),
      r.prefillTokensPerSecond.toFixed(1),
    ]),
  ),
  '',
  `One MoE layer (${numExperts} x ${expertWidth}, top-${k}) on ${batch} tokens:`,
  '',
  markdownTable(
    ['dispatch', 'capacity / expert', 'rows computed', 'drop rate', 'ms / layer', 'vs dropless'],
    layerRows.map((r) => [
      r.dispatch,
      r.capacity === null ? '-' : String(r.capacity),
      String(r.rowsComputed),
      r.dropRate.toFixed(3),
      r.ms.toFixed(3),
      ratio(r.droplessOver),
    ]),
  ),
  '',
  `Expert parallelism on paper: that layer's dropless routing of ${batch} tokens over devices (bf16 rows):`,
  '',
  markdownTable(
    [
      'devices',
      'placement',
      'dispatch all-to-all KB',
      'max sent by a device KB',
      'local slots',
      'load max / mean',
    ],
    parallelRows.map((r) => [
      String(r.devices),
      r.placement,
      (r.dispatchBytes / 1024).toFixed(1),
      (r.maxSentBytes / 1024).toFixed(1),
      r.localShare.toFixed(3),
      r.rowMaxOverMean.toFixed(2),
    ]),
  ),
].join('\n');
const moeRow = decodeRows[1]!;
reportResults({
  outPath,
  script: 'node build/bench/decode.js',
  table,
  machine: machineFacts(),
  data: {
    shape: { hidden, layers, width, numExperts, expertWidth, k, vocab, heads: HEADS, kvHeads: KV_HEADS },
    settings: { promptLength, newTokens, rounds, batch, threads: backend.threads, seed, quick },
    mlpShareOfEqualTotal: mlpShare,
    decode: decodeRows,
    moeOverDenseEqualTotal: moeRow.decodeTokensPerSecond / denseTotal.decodeTokensPerSecond,
    // The same ratio within each round (the machine's load drifts between rounds).
    moeOverDenseEqualTotalPerRound: decode[1]!.map((v, r) => v / decode[0]![r]!),
    moeOverDenseEqualActive: moeRow.decodeTokensPerSecond / denseActive.decodeTokensPerSecond,
    denseActiveOverDenseTotal: denseActive.decodeTokensPerSecond / denseTotal.decodeTokensPerSecond,
    totalOverActive: moeRow.totalParams / moeRow.activeParams,
    layer: layerRows,
    parallel: parallelRows,
  },
});
await backend.dispose();
