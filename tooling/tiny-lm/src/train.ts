/**
 * Train tiny-lm and write it, as a Hugging Face folder, to packages/models/tiny-lm/:
 *
 *   pnpm --filter @sparsekit/tiny-lm-training build && node tooling/tiny-lm/dist/train.js \
 *     [--steps 2200] [--minutes 85] [--lr 1.2e-2] [--weight-decay 0] [--bos] [--intermediate 384]
 *     [--out packages/models/tiny-lm]
 *
 * The defaults are the bundled model's recipe: its peak learning rate grows outlier input features
 * (as LLM training does), which 3e-3 does not.
 *
 * Corpus: Moby-Dick (139 chapters), State of the Union addresses (1790-2021) and the Brown corpus
 * (500 texts, tags removed), split by document with seed 1234 (90% train, 5% validation, 5% test).
 * Tokenizer: byte-level BPE, 512 tokens (256 bytes, 255 merges learned on the training split,
 * <|endoftext|> between documents). Model: Llama-style, 4 layers, hidden 128, 4 heads with 2 KV heads,
 * SwiGLU 384, RoPE, 128 positions, tied embeddings (~0.9M parameters), trained with Adam on random
 * 128-token windows of the training split, on TensorFlow.js. (The pieces live in training.ts, shared
 * with train-moe.ts.) --intermediate changes the MLP width only (the MoE tables' dense baseline of
 * equal total parameters uses it).
 */
import { join, resolve } from 'node:path';
import { option } from '@sparsekit/bench';
import { loadTfjs } from '@sparsekit/core';
import { LlamaTwin } from '@sparsekit/models/tfjs';
import { SEED, saveAndEvaluate, tinyLmConfig, tinyLmData, trainingLog, trainTwin } from './training.js';

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
const intermediate = Number(option('intermediate', '384'));
const warmup = 50;

const { log, say, elapsed } = trainingLog();
const data = tinyLmData(say);
const config = { ...tinyLmConfig(data.eot, seqLen), intermediateSize: intermediate };
const { tf, backend } = await loadTfjs();
const twin = LlamaTwin.init(tf, config, SEED);
const parameters = twin.variables().reduce((n, v) => n + v.size, 0);
say({ event: 'model', backend, parameters, peakLr, weightDecay, bos, batchSize, seqLen, config });
trainTwin({
  tf,
  twin,
  data,
  steps,
  minutes,
  peakLr,
  weightDecay,
  bos,
  batchSize,
  seqLen,
  warmup,
  say,
  elapsed,
});
await saveAndEvaluate({ twin, config, data, seqLen, out, log, say });
