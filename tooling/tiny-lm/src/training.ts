// The pieces of tiny-lm's training that its scripts share (train.ts trains the bundled model,
// train-moe.ts its mixture-of-experts variant): the corpus and tokenizer, the architecture, random
// training windows, the optimisation loop (Adam with warm-up and cosine decay, gradient norm clipped
// at 1), and saving with a test perplexity and a training log.
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type LoadedTfjs, Rng } from '@sparsekit/core';
import { perplexityOfTokens } from '@sparsekit/eval-harness';
import { backendRef, HfTokenizer, type ModelConfig, TransformerLM } from '@sparsekit/models';
import { saveModel } from '@sparsekit/models/node';
import { expertLoad, type LlamaTwin, type TwinLossOptions, type TwinRouting } from '@sparsekit/models/tfjs';
import { createWasmBackend } from '@sparsekit/sparse-formats';
import type * as TF from '@tensorflow/tfjs-core';
import { type TrainedBpe, tokenizerJson, trainBpe } from './bpe.js';
import { loadCorpus, type Split, splitCorpus } from './corpus.js';

type Tf = LoadedTfjs['tf'];
export type Say = (entry: Record<string, unknown>) => void;

export const SEED = 1234;
export const EOT = '<|endoftext|>';

/** A JSON-lines progress log with seconds since `started`, kept in memory for the training log. */
export function trainingLog() {
  const started = performance.now();
  const elapsed = () => (performance.now() - started) / 1000;
  const log: Record<string, unknown>[] = [];
  const say: Say = (entry) => {
    log.push({ t: Math.round(elapsed()), ...entry });
    console.log(JSON.stringify(log.at(-1)));
  };
  return { log, say, elapsed };
}

export interface TinyLmData {
  split: Split;
  bpe: TrainedBpe;
  tokenizerJson: Record<string, unknown>;
  eot: number;
  train: Int32Array;
  validation: Int32Array;
  test: Int32Array;
}

/**
 * The corpus split by document with `SEED`, a 512-token byte-level BPE learned on (up to 3M
 * characters of) the training split, and the three splits tokenized, <|endoftext|> after each document.
 */
export function tinyLmData(say: Say): TinyLmData {
  const split = splitCorpus(loadCorpus(), SEED);
  const chars = (docs: { text: string }[]) => docs.reduce((n, d) => n + d.text.length, 0);
  say({
    event: 'corpus',
    documents: { train: split.train.length, validation: split.validation.length, test: split.test.length },
    characters: { train: chars(split.train), validation: chars(split.validation), test: chars(split.test) },
  });
  const bpeSample: string[] = [];
  for (let n = 0, i = 0; n < 3_000_000 && i < split.train.length; i++) {
    bpeSample.push(split.train[i]!.text);
    n += split.train[i]!.text.length;
  }
  const bpe = trainBpe(bpeSample, 512, [EOT]);
  const tokJson = tokenizerJson(bpe, [EOT]);
  const eot = bpe.vocab.get(EOT)!;
  const tokenizer = HfTokenizer.fromJson(tokJson, { bosTokenId: eot, eosTokenId: eot });
  const encodeAll = (docs: { text: string }[]) => {
    const ids: number[] = [];
    for (const d of docs) {
      for (const id of tokenizer.encode(d.text)) ids.push(id);
      ids.push(eot);
    }
    return Int32Array.from(ids);
  };
  const train = encodeAll(split.train);
  const validation = encodeAll(split.validation);
  const test = encodeAll(split.test);
  say({
    event: 'tokenized',
    merges: bpe.merges.length,
    tokens: { train: train.length, validation: validation.length, test: test.length },
  });
  return { split, bpe, tokenizerJson: tokJson, eot, train, validation, test };
}

/**
 * tiny-lm's architecture: Llama-style, 4 layers, hidden 128, 4 heads with 2 KV heads, SwiGLU 384,
 * RoPE, `seqLen` positions, tied embeddings, vocabulary 512.
 */
export function tinyLmConfig(eot: number, seqLen: number): ModelConfig {
  return {
    family: 'llama',
    vocabSize: 512,
    hiddenSize: 128,
    numLayers: 4,
    numHeads: 4,
    numKvHeads: 2,
    headDim: 32,
    intermediateSize: 384,
    maxPositions: seqLen,
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
    tieEmbeddings: true,
    wordEmbedDim: 128,
    bosTokenId: eot,
    eosTokenId: eot,
  };
}

/**
 * Input and target windows [starts, seqLen] at `starts` (seqLen + 1 tokens each); with `bos` each
 * window starts with `eot`, then seqLen - 1 text tokens.
 */
export function windowsOf(tf: Tf, seqLen: number, bos: boolean, eot: number) {
  return (tokens: Int32Array, starts: number[]) => {
    const inputs = new Int32Array(starts.length * seqLen);
    const targets = new Int32Array(starts.length * seqLen);
    starts.forEach((s, b) => {
      if (bos) {
        inputs[b * seqLen] = eot;
        inputs.set(tokens.subarray(s, s + seqLen - 1), b * seqLen + 1);
        targets.set(tokens.subarray(s, s + seqLen), b * seqLen);
      } else {
        inputs.set(tokens.subarray(s, s + seqLen), b * seqLen);
        targets.set(tokens.subarray(s + 1, s + seqLen + 1), b * seqLen);
      }
    });
    return [
      tf.tensor2d(inputs, [starts.length, seqLen], 'int32'),
      tf.tensor2d(targets, [starts.length, seqLen], 'int32'),
    ] as const;
  };
}

export interface TrainOptions {
  tf: Tf;
  twin: LlamaTwin;
  data: TinyLmData;
  steps: number;
  minutes: number;
  peakLr: number;
  weightDecay: number;
  bos: boolean;
  batchSize: number;
  seqLen: number;
  warmup: number;
  say: Say;
  elapsed: () => number;
  /** Router loss coefficients (MoE models); the log then records each unweighted router loss. */
  lossOptions?: TwinLossOptions;
  /** Log every this many steps (validation every 4 of them). Default 25. */
  logEvery?: number;
}

/**
 * Apply `grads` with their global norm clipped at 1 (one sync; every intermediate freed, or wasm
 * memory runs out). Returns the norm before clipping; the caller still owns `grads`.
 */
export function applyClipped(tf: Tf, optimizer: TF.Optimizer, grads: TF.NamedTensorMap): number {
  const norm = Math.sqrt(
    tf.tidy(() => tf.addN(Object.values(grads).map((g) => tf.sum(tf.square(g)))).dataSync()[0]!),
  );
  const scale = Math.min(1, 1 / (norm + 1e-6));
  tf.tidy(() => {
    const clipped = Object.fromEntries(Object.entries(grads).map(([k, g]) => [k, tf.mul(g, scale)]));
    optimizer.applyGradients(clipped as unknown as Parameters<typeof optimizer.applyGradients>[0]);
  });
  return norm;
}

/**
 * Adam (0.9, 0.95) on random windows of the training split, warm-up then a cosine decay to 10% over
 * whichever runs out first (the steps or the time budget), the global gradient norm clipped at 1,
 * decoupled weight decay on the matrices. Returns the steps taken.
 */
export function trainTwin(o: TrainOptions): number {
  const { tf, twin, steps, minutes, peakLr, say, elapsed } = o;
  const logEvery = o.logEvery ?? 25;
  const windowsAt = windowsOf(tf, o.seqLen, o.bos, o.data.eot);
  const decayed = twin.variables().filter((v) => v.rank === 2);
  const gains = twin.variables().filter((v) => v.rank === 1);
  /** max / median of |gain| over every norm's gains: how unevenly the model scales its features. */
  const gainSpread = () => {
    const values = gains
      .flatMap((g) => [...(g.dataSync() as Float32Array)].map(Math.abs))
      .sort((a, b) => a - b);
    return values.at(-1)! / values[values.length >> 1]!;
  };
  const rng = new Rng(SEED);
  const validation = o.data.validation;
  const valStarts = Array.from({ length: 16 }, (_, i) =>
    Math.floor((i * (validation.length - o.seqLen - 1)) / 16),
  );
  const validationLoss = () =>
    tf.tidy(() => {
      const [x, y] = windowsAt(validation, valStarts);
      return twin.loss(x, y).dataSync()[0]!;
    });
  /** Each MoE layer's share of the top-k assignments per expert on the validation windows. */
  const validationLoad = () =>
    tf.tidy(() => {
      const [x] = windowsAt(validation, valStarts);
      const routing: TwinRouting[] = [];
      twin.logits(x, undefined, routing);
      return expertLoad(routing).map((layer) => layer.map((v) => Math.round(v * 1000) / 1000));
    });
  const optimizer = tf.train.adam(peakLr, 0.9, 0.95, 1e-8);
  const progress = (step: number) => Math.max(step / steps, elapsed() / (minutes * 60));
  const lrAt = (step: number) => {
    if (step < o.warmup) return (peakLr * (step + 1)) / o.warmup;
    const p = Math.min(1, progress(step));
    return peakLr * (0.1 + 0.45 * (1 + Math.cos(Math.PI * p)));
  };
  const train = o.data.train;
  let recent: number[] = [];
  let recentRouter: { loadBalance: number; routerZ: number }[] = [];
  let step = 0;
  for (; step < steps && elapsed() < minutes * 60; step++) {
    (optimizer as unknown as { learningRate: number }).learningRate = lrAt(step);
    const starts = Array.from({ length: o.batchSize }, () => rng.int(train.length - o.seqLen - 1));
    const [x, y] = windowsAt(train, starts);
    const kept: TF.Tensor[] = [];
    twin.training = true; // (gates with noise or jitter apply it in the training step only)
    const { value, grads } = tf.variableGrads(() => {
      const terms = twin.lossTerms(x, y, o.lossOptions);
      if (terms.loadBalance !== undefined && terms.routerZ !== undefined)
        kept.push(tf.keep(terms.loadBalance), tf.keep(terms.routerZ));
      return terms.total;
    }, twin.variables());
    twin.training = false;
    const norm = applyClipped(tf, optimizer, grads);
    if (o.weightDecay > 0) {
      const keep = 1 - lrAt(step) * o.weightDecay;
      for (const v of decayed) tf.tidy(() => v.assign(tf.mul(v, keep)));
    }
    recent.push(value.dataSync()[0]!);
    if (kept.length === 2)
      recentRouter.push({ loadBalance: kept[0]!.dataSync()[0]!, routerZ: kept[1]!.dataSync()[0]! });
    tf.dispose([x, y, value, ...kept, ...Object.values(grads)]);
    if ((step + 1) % logEvery === 0) {
      const mean = (v: number[]) => v.reduce((a, b) => a + b) / v.length;
      const entry: Record<string, unknown> = {
        step: step + 1,
        loss: mean(recent),
        lr: lrAt(step),
        gradNorm: norm,
      };
      if (recentRouter.length > 0) {
        entry.loadBalance = mean(recentRouter.map((r) => r.loadBalance));
        entry.routerZ = mean(recentRouter.map((r) => r.routerZ));
      }
      if ((step + 1) % (4 * logEvery) === 0) {
        entry.validationLoss = validationLoss();
        entry.gainSpread = gainSpread();
        if (recentRouter.length > 0) entry.expertLoad = validationLoad();
      }
      say(entry);
      recent = [];
      recentRouter = [];
    }
  }
  say({
    event: 'trained',
    steps: step,
    tokensSeen: step * o.batchSize * o.seqLen,
    validationLoss: validationLoss(),
  });
  return step;
}

/**
 * Save the twin as a Hugging Face folder in `out`, evaluate the saved weights with the runtime on
 * the wasm backend (test perplexity over 256 windows, next to an add-one unigram baseline), and
 * write `training-log.json` (the seed, the split and the log).
 */
export async function saveAndEvaluate(o: {
  twin: LlamaTwin;
  config: ModelConfig;
  data: TinyLmData;
  seqLen: number;
  out: string;
  log: Record<string, unknown>[];
  say: Say;
}): Promise<void> {
  const { config, data, seqLen, out, say } = o;
  const backends = backendRef();
  const model = new TransformerLM(config, o.twin.toParams(backends), backends);
  mkdirSync(out, { recursive: true });
  await saveModel(model, out, { tokenizerJson: `${JSON.stringify(data.tokenizerJson)}\n` });
  const wasm = await createWasmBackend();
  model.backend = wasm;
  const windows = 256;
  const { test, train } = data;
  const result = await perplexityOfTokens(model, test, { maxLength: seqLen, maxWindows: windows });
  // Unigram baseline on the same scored tokens: add-one counts over the training tokens.
  const counts = new Float64Array(config.vocabSize).fill(1);
  for (const id of train) counts[id]! += 1;
  const total = counts.reduce((a, b) => a + b);
  let nll = 0;
  let scored = 0;
  for (let w = 0; w < result.protocol.windows; w++) {
    for (let t = 1; t < seqLen; t++) {
      nll -= Math.log(counts[test[w * seqLen + t]!]! / total);
      scored++;
    }
  }
  say({
    event: 'test',
    protocol: result.protocol,
    perplexity: result.perplexity,
    unigramPerplexity: Math.exp(nll / scored),
    scoredTokens: scored,
  });
  await wasm.dispose();
  const logPath = join(out, 'training-log.json');
  const { split } = data;
  writeFileSync(
    `${logPath}.tmp`,
    `${JSON.stringify(
      {
        seed: SEED,
        split: {
          train: split.train.map((d) => `${d.source}/${d.name}`),
          validation: split.validation.map((d) => `${d.source}/${d.name}`),
          test: split.test.map((d) => `${d.source}/${d.name}`),
        },
        log: o.log,
      },
      null,
      1,
    )}\n`,
  );
  renameSync(`${logPath}.tmp`, logPath);
  console.log(`wrote ${out}`);
}
