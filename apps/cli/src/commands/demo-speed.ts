// The demo's speed rows: decode tokens/s of a model big enough to be memory-bound (Llama-shaped,
// seeded random weights, built in memory), dense against each sparse format, pruned by magnitude
// (random weights have no activations worth calibrating on) and packed, measured in one run.
import type { Tensor } from '@sparsekit/core';
import { runSweep, type SweepPoint } from '@sparsekit/eval-harness/node';
import {
  createOnnxDecoder,
  generationSpeed,
  llamaDecodeOnnx,
  type OnnxRuntimeLike,
  onnxGenerationSpeed,
  type RandomLlamaShape,
  randomLlama,
  type Speed,
  type TransformerLM,
} from '@sparsekit/models';
import { type Recipe, runRecipe } from '@sparsekit/pruners';
import type { CpuBackend } from '../backend.js';
import { linearStats } from '../model-io.js';
import type { Ui } from '../ui.js';
import { formatBytes, table } from '../ui.js';

/** Two blocks at TinyLlama-1.1B's width with a smaller vocabulary, so the blocks dominate decode. */
export const SPEED_SHAPE: RandomLlamaShape & { description: string } = {
  description:
    "2 blocks at TinyLlama-1.1B's width (hidden 2048, MLP 5632, 32 heads, 4 KV heads), vocab 8192, seeded random weights",
  hidden: 2048,
  intermediate: 5632,
  heads: 32,
  kvHeads: 4,
  layers: 2,
  vocab: 8192,
  maxPositions: 256,
};

type Point = SweepPoint<{ label: string; format: string; recipe?: Recipe; onnxruntime?: true }>;

/** The dense weights on onnxruntime-node (the same model as one ONNX decode graph), after our dense. */
const ONNX_POINT: Point = {
  key: 'dense onnxruntime',
  params: { label: 'dense, onnxruntime-node', format: 'dense f32', onnxruntime: true },
};

const POINTS: Point[] = [
  { key: 'dense', params: { label: 'dense', format: 'dense f32' } },
  {
    key: '50%',
    params: { label: 'magnitude 50%', format: 'CSR', recipe: { method: 'magnitude', sparsity: 0.5 } },
  },
  {
    key: '2:4',
    params: { label: 'magnitude 2:4', format: 'N:M', recipe: { method: 'magnitude', pattern: '2:4' } },
  },
  {
    key: '70%',
    params: { label: 'magnitude 70%', format: 'CSR', recipe: { method: 'magnitude', sparsity: 0.7 } },
  },
  {
    key: '90%',
    params: { label: 'magnitude 90%', format: 'CSR', recipe: { method: 'magnitude', sparsity: 0.9 } },
  },
  {
    key: '90% 1x8',
    params: {
      label: 'magnitude 90%, 1x8 blocks',
      format: 'BSR 1x8',
      recipe: { method: 'magnitude', sparsity: 0.9, blocks: '1x8' },
    },
  },
  {
    key: '90% 8x1',
    params: {
      label: 'magnitude 90%, 8x1 blocks',
      format: 'BSR 8x1',
      recipe: { method: 'magnitude', sparsity: 0.9, blocks: '8x1' },
    },
  },
];

export interface SpeedRow {
  config: string;
  /** Which runtime decoded: ours on `backend`, or onnxruntime-node on the dense weights. */
  engine?: 'onnxruntime';
  format: string;
  sparsity: number;
  bytes: number;
  decodeTokensPerSecond: number;
  prefillTokensPerSecond: number;
}

export interface SpeedSection {
  model: string;
  backend: string;
  threads: number;
  /** Why there is no onnxruntime row, where there is none. */
  onnxruntimeMissing?: string;
  /** The LM head's share of the weights read per decoded token (dense in every row). */
  lmHeadShare: number;
  rows: SpeedRow[];
}

/**
 * Build the speed model, and for each point restore its dense weights, prune and pack them, and time
 * decode; rows go to `file` as they finish (resumable like the quality rows).
 */
export async function speedSection(
  backend: CpuBackend,
  ui: Ui,
  options: {
    file: string;
    resume: boolean;
    newTokens: number;
    /** Default SPEED_SHAPE (another shape for tests). */
    shape?: RandomLlamaShape & { description: string };
    /** onnxruntime for the baseline row (default: onnxruntime-node when it loads; false: none). */
    onnxruntime?: OnnxRuntimeLike | false;
  },
): Promise<SpeedSection> {
  const shape = options.shape ?? SPEED_SHAPE;
  const ort = options.onnxruntime === undefined ? await loadOnnxRuntime() : options.onnxruntime;
  const onnxruntimeMissing = typeof ort === 'string' ? ort : ort === false ? 'not asked for' : undefined;
  if (typeof ort === 'string') ui.say(`no onnxruntime row: ${ort}`);
  const points = typeof ort === 'object' ? [POINTS[0]!, ONNX_POINT, ...POINTS.slice(1)] : POINTS;
  const progress = ui.progress('speed model');
  progress({ stage: 'build', current: 0, total: points.length, unit: 'variant', message: 'random weights' });
  let done = 0;
  const model = randomLlama(shape, 0, backend);
  const originals = new Map<string, Tensor<'f32'>>(model.linearLayers().map((l) => [l.name, l.getWeight()]));
  const sweep = await runSweep({
    points,
    file: options.file,
    resume: options.resume,
    settings: {
      model: shape.description,
      backend: backend.name,
      threads: backend.threads,
      newTokens: options.newTokens,
    },
    run: async ({ label, format, recipe, onnxruntime }) => {
      for (const l of model.linearLayers()) {
        backend.release(l.matrix);
        l.setWeight(originals.get(l.name)!);
      }
      if (recipe !== undefined)
        await runRecipe(model, [], recipe, { reconstructionError: false, pack: true, backend });
      const stats = linearStats(model);
      const timing = { promptLength: 16, newTokens: options.newTokens, reps: 3 };
      const speed =
        onnxruntime === true && typeof ort === 'object'
          ? await onnxSpeed(ort, model, backend.threads, timing)
          : generationSpeed(model, timing);
      progress({ stage: 'decode', current: ++done, total: points.length, unit: 'variant', message: label });
      return {
        config: label,
        ...(onnxruntime === true ? { engine: 'onnxruntime' as const } : {}),
        format,
        sparsity: stats.sparsity,
        bytes: stats.bytes,
        decodeTokensPerSecond: speed.decodeTokensPerSecond,
        prefillTokensPerSecond: speed.prefillTokensPerSecond,
      };
    },
  });
  const blockWeights = linearStats(model).weights;
  const head = shape.vocab * shape.hidden;
  for (const l of model.linearLayers()) backend.release(l.matrix);
  return {
    model: shape.description,
    backend: backend.name,
    threads: backend.threads,
    ...(onnxruntimeMissing === undefined ? {} : { onnxruntimeMissing }),
    lmHeadShare: head / (head + blockWeights),
    rows: sweep.rows.map((r) => r.result),
  };
}

/** onnxruntime-node, or why it does not load (it is an optional dependency). */
async function loadOnnxRuntime(): Promise<OnnxRuntimeLike | string> {
  try {
    return (await import('onnxruntime-node')) as unknown as OnnxRuntimeLike;
  } catch (error) {
    return `onnxruntime-node does not load (${(error as Error).message.split('\n')[0]})`;
  }
}

/** Decode speed of the model's dense weights as one ONNX graph on onnxruntime, all `threads`. */
async function onnxSpeed(
  ort: OnnxRuntimeLike,
  model: TransformerLM,
  threads: number,
  timing: { promptLength: number; newTokens: number; reps: number },
): Promise<Speed> {
  const graph = llamaDecodeOnnx(model);
  const decoder = await createOnnxDecoder(ort, graph, {
    executionProviders: ['cpu'],
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
  });
  try {
    return await onnxGenerationSpeed(decoder, graph, timing);
  } finally {
    await decoder.release();
  }
}

/** The section as the terminal table. */
export function speedTable(section: SpeedSection): string {
  const dense = section.rows[0]!.decodeTokensPerSecond;
  return table(
    ['weights', 'format', 'sparsity', 'linear bytes', 'decode tok/s', 'vs dense'],
    section.rows.map((r) => [
      r.config,
      r.format,
      `${(100 * r.sparsity).toFixed(1)}%`,
      formatBytes(r.bytes),
      r.decodeTokensPerSecond.toFixed(1),
      `${(r.decodeTokensPerSecond / dense).toFixed(2)}x`,
    ]),
  );
}

/** The section as Markdown, for report.md. */
export function speedMarkdown(section: SpeedSection): string {
  const dense = section.rows[0]!.decodeTokensPerSecond;
  return [
    `## Decode speed on a memory-bound model`,
    '',
    `${section.model}; magnitude-pruned and packed (random weights: only speed means anything here); ${section.backend} kernels, ${section.threads} threads; the LM head (${(100 * section.lmHeadShare).toFixed(0)}% of the weights read per token) stays dense.`,
    '',
    section.onnxruntimeMissing === undefined
      ? `The onnxruntime-node row decodes the same dense weights, exported as one ONNX decode graph (one token per step, the cache fed back), on its CPU provider with the same threads.`
      : `No onnxruntime-node row: ${section.onnxruntimeMissing}.`,
    '',
    '| weights | format | sparsity | linear bytes | decode tok/s | vs dense |',
    '| --- | --- | --: | --: | --: | --: |',
    ...section.rows.map(
      (r) =>
        `| ${r.config} | ${r.format} | ${(100 * r.sparsity).toFixed(1)}% | ${formatBytes(r.bytes)} | ${r.decodeTokensPerSecond.toFixed(1)} | ${(r.decodeTokensPerSecond / dense).toFixed(2)}x |`,
    ),
  ].join('\n');
}
