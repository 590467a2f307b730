/**
 * Train tiny-lm and write it, as a Hugging Face folder, to packages/models/tiny-lm/:
 *
 *   pnpm --filter @sparsekit/tiny-lm-training build && node tooling/tiny-lm/dist/train.js \
 *     [--steps 2200] [--minutes 85] [--lr 1.2e-2] [--weight-decay 0] [--bos] [--out packages/models/tiny-lm]
 *
 * The defaults are the bundled model's recipe: its peak learning rate grows outlier input features
 * (as LLM training does), which 3e-3 does not.
 *
 * Corpus: Moby-Dick (139 chapters), State of the Union addresses (1790-2021) and the Brown corpus
 * (500 texts, tags removed), split by document with seed 1234 (90% train, 5% validation, 5% test).
 * Tokenizer: byte-level BPE, 512 tokens (256 bytes, 255 merges learned on the training split,
 * <|endoftext|> between documents). Model: Llama-style, 4 layers, hidden 128, 4 heads with 2 KV heads,
 * SwiGLU 384, RoPE, 128 positions, tied embeddings (~0.9M parameters), trained with Adam on random
 * 128-token windows of the training split, on TensorFlow.js.
 */
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { option } from '@sparsekit/bench';
import { loadTfjs, Rng } from '@sparsekit/core';
import { perplexityOfTokens } from '@sparsekit/eval-harness';
import { backendRef, HfTokenizer, type ModelConfig, TransformerLM } from '@sparsekit/models';
import { saveModel } from '@sparsekit/models/node';
import { LlamaTwin } from '@sparsekit/models/tfjs';
import { createWasmBackend } from '@sparsekit/sparse-formats';
import { tokenizerJson, trainBpe } from './bpe.js';
import { loadCorpus, splitCorpus } from './corpus.js';

const SEED = 1234;
const steps = Number(option('steps', '2200'));
const minutes = Number(option('minutes', '85'));
const out = resolve(
  option('out', join(import.meta.dirname ?? '.', '..', '..', '..', 'packages', 'models', 'tiny-lm')),
);
const batchSize = 16;
const seqLen = 128;
const peakLr = Number(option('lr', '1.2e-2'));
// Decoupled (AdamW) weight decay on the matrices and the embedding, none on the norm gains, as LLMs
// are trained. Its timescale 1 / (lr * decay) is set against this short run, not against 100k+ steps.
const weightDecay = Number(option('weight-decay', '0'));
// With --bos every window starts with <|endoftext|> (as Llama-style training prepends BOS), then
// seqLen - 1 text tokens; the first text token is predicted from it. (The test perplexity this script
// prints uses unprefixed windows; evaluate such a model with the rolling protocol instead.)
const bos = process.argv.includes('--bos');
const warmup = 50;
const EOT = '<|endoftext|>';

const started = performance.now();
const elapsed = () => (performance.now() - started) / 1000;
const log: Record<string, unknown>[] = [];
const say = (entry: Record<string, unknown>) => {
  log.push({ t: Math.round(elapsed()), ...entry });
  console.log(JSON.stringify(log.at(-1)));
};

// Data.
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

// Model.
const config: ModelConfig = {
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
const { tf, backend } = await loadTfjs();
const twin = LlamaTwin.init(tf, config, SEED);
const parameters = twin.variables().reduce((n, v) => n + v.size, 0);
say({ event: 'model', backend, parameters, peakLr, weightDecay, bos, batchSize, seqLen, config });
const decayed = twin.variables().filter((v) => v.rank === 2);
const gains = twin.variables().filter((v) => v.rank === 1);
/** max / median of |gain| over every norm's gains: how unevenly the model scales its features. */
const gainSpread = () => {
  const values = gains
    .flatMap((g) => [...(g.dataSync() as Float32Array)].map(Math.abs))
    .sort((a, b) => a - b);
  return values.at(-1)! / values[values.length >> 1]!;
};

// Training: random windows of seqLen + 1 tokens.
const rng = new Rng(SEED);
const windowsAt = (tokens: Int32Array, starts: number[]) => {
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
const valStarts = Array.from({ length: 16 }, (_, i) =>
  Math.floor((i * (validation.length - seqLen - 1)) / 16),
);
const validationLoss = () =>
  tf.tidy(() => {
    const [x, y] = windowsAt(validation, valStarts);
    return twin.loss(x, y).dataSync()[0]!;
  });
const optimizer = tf.train.adam(peakLr, 0.9, 0.95, 1e-8);
// Warm-up, then a cosine decay to 10% over whichever runs out first: the steps or the time budget.
const progress = (step: number) => Math.max(step / steps, elapsed() / (minutes * 60));
const lrAt = (step: number) => {
  if (step < warmup) return (peakLr * (step + 1)) / warmup;
  const p = Math.min(1, progress(step));
  return peakLr * (0.1 + 0.45 * (1 + Math.cos(Math.PI * p)));
};
let recent: number[] = [];
let step = 0;
for (; step < steps && elapsed() < minutes * 60; step++) {
  (optimizer as unknown as { learningRate: number }).learningRate = lrAt(step);
  const starts = Array.from({ length: batchSize }, () => rng.int(train.length - seqLen - 1));
  const [x, y] = windowsAt(train, starts);
  const { value, grads } = tf.variableGrads(() => twin.loss(x, y), twin.variables());
  // Clip the global gradient norm at 1 (one sync; every intermediate freed, or wasm memory runs out).
  const norm = Math.sqrt(
    tf.tidy(() => tf.addN(Object.values(grads).map((g) => tf.sum(tf.square(g)))).dataSync()[0]!),
  );
  const scale = Math.min(1, 1 / (norm + 1e-6));
  const clipped = Object.fromEntries(Object.entries(grads).map(([k, g]) => [k, tf.mul(g, scale)]));
  optimizer.applyGradients(clipped as unknown as Parameters<typeof optimizer.applyGradients>[0]);
  if (weightDecay > 0) {
    const keep = 1 - lrAt(step) * weightDecay;
    for (const v of decayed) tf.tidy(() => v.assign(tf.mul(v, keep)));
  }
  recent.push(value.dataSync()[0]!);
  tf.dispose([x, y, value, ...Object.values(grads), ...Object.values(clipped)]);
  if ((step + 1) % 25 === 0) {
    const entry: Record<string, unknown> = {
      step: step + 1,
      loss: recent.reduce((a, b) => a + b) / recent.length,
      lr: lrAt(step),
      gradNorm: norm,
    };
    if ((step + 1) % 100 === 0) {
      entry.validationLoss = validationLoss();
      entry.gainSpread = gainSpread();
    }
    say(entry);
    recent = [];
  }
}
say({
  event: 'trained',
  steps: step,
  tokensSeen: step * batchSize * seqLen,
  validationLoss: validationLoss(),
});

// Save as a Hugging Face folder, then evaluate the saved weights with the runtime.
const backends = backendRef();
const model = new TransformerLM(config, twin.toParams(backends), backends);
mkdirSync(out, { recursive: true });
await saveModel(model, out, { tokenizerJson: `${JSON.stringify(tokJson)}\n` });
const wasm = await createWasmBackend();
model.backend = wasm;
const windows = 256;
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
      log,
    },
    null,
    1,
  )}\n`,
);
renameSync(`${logPath}.tmp`, logPath);
console.log(`wrote ${out}`);
