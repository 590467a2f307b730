// Deja Vu predictors on disk: one safetensors file (written atomically), each block's two weight
// matrices as f32 tensors and every predictor's settings as JSON in the header's metadata.
import {
  InvalidFormatError,
  NonFiniteError,
  ShapeMismatchError,
  strictJsonIssue,
  Tensor,
} from '@sparsekit/core';
import { readSafetensors, writeSafetensors } from '@sparsekit/core/node';
import { checkLabelRule, type LabelRule, MlpPredictor } from './predictor.js';

const FORMAT = 'sparsekit.dejavu-predictors';
const VERSION = '1';

/** One predictor's entry in the metadata (`predictors`, a JSON list). */
interface PredictorEntry {
  block: number;
  inputSize: number;
  rank: number;
  hiddenSize: number;
  threshold: number;
  label: LabelRule;
}

const fc1Name = (block: number) => `blocks.${block}.fc1.weight`;
const fc2Name = (block: number) => `blocks.${block}.fc2.weight`;

/**
 * Save predictors as safetensors: `blocks.B.fc1.weight` [rank, inputSize] and `blocks.B.fc2.weight`
 * [hiddenSize, rank] (f32, torch Linear layout), and in the metadata `format`, `version` and
 * `predictors` (JSON: block, sizes, firing threshold and label rule of each).
 */
export async function savePredictors(path: string, predictors: readonly MlpPredictor[]): Promise<void> {
  const tensors: Record<string, Tensor> = {};
  const entries: PredictorEntry[] = [];
  for (const p of predictors) {
    if (tensors[fc1Name(p.block)] !== undefined)
      throw new InvalidFormatError('Deja Vu predictors', `two predictors for block ${p.block}`);
    tensors[fc1Name(p.block)] = new Tensor('f32', [p.rank, p.inputSize], p.fc1);
    tensors[fc2Name(p.block)] = new Tensor('f32', [p.hiddenSize, p.rank], p.fc2);
    entries.push({
      block: p.block,
      inputSize: p.inputSize,
      rank: p.rank,
      hiddenSize: p.hiddenSize,
      threshold: p.threshold,
      label: p.label,
    });
  }
  await writeSafetensors(path, tensors, {
    format: FORMAT,
    version: VERSION,
    predictors: JSON.stringify(entries),
  });
}

/**
 * Load predictors written by `savePredictors`. A file of another format or version, metadata that
 * does not describe predictors, a missing tensor or a non-f32 one is an `InvalidFormatError`; a
 * tensor whose shape disagrees with its entry is a `ShapeMismatchError`; NaN or Inf weights are a
 * `NonFiniteError`; a damaged safetensors file is core's `SafetensorsError`.
 */
export async function loadPredictors(path: string): Promise<MlpPredictor[]> {
  const { tensors, metadata } = await readSafetensors(path);
  const bad = (reason: string): never => {
    throw new InvalidFormatError('Deja Vu predictors', `${path}: ${reason}`);
  };
  if (metadata.format !== FORMAT)
    bad(`not a predictors file (metadata format ${JSON.stringify(metadata.format)})`);
  if (metadata.version !== VERSION)
    bad(`version ${JSON.stringify(metadata.version)} is not one this package reads (${VERSION})`);
  const text = metadata.predictors ?? '';
  let entries: unknown;
  try {
    entries = JSON.parse(text);
  } catch {
    bad("metadata 'predictors' is not JSON");
  }
  const issue = strictJsonIssue(text);
  if (issue !== undefined) bad(`metadata 'predictors': ${issue}`);
  if (!Array.isArray(entries)) return bad("metadata 'predictors' must be a list");
  const seen = new Set<number>();
  const out: MlpPredictor[] = [];
  for (const [i, raw] of (entries as unknown[]).entries()) {
    const e = (typeof raw === 'object' && raw !== null ? raw : {}) as Record<string, unknown>;
    const where = `predictors[${i}]`;
    for (const key of ['inputSize', 'rank', 'hiddenSize'] as const)
      if (!(Number.isSafeInteger(e[key]) && (e[key] as number) >= 1))
        bad(`${where}.${key} must be a positive integer`);
    if (!(Number.isSafeInteger(e.block) && (e.block as number) >= 0))
      bad(`${where}.block must be a non-negative integer`);
    const block = e.block as number;
    if (seen.has(block)) bad(`two predictors for block ${block}`);
    seen.add(block);
    if (!(typeof e.threshold === 'number' && e.threshold >= 0 && e.threshold <= 1))
      bad(`${where}.threshold must be a number in [0, 1]`);
    let label: LabelRule;
    try {
      label = checkLabelRule(e.label as LabelRule, e.hiddenSize as number, `${where}.label`);
    } catch (error) {
      return bad((error as Error).message);
    }
    const sizes = {
      inputSize: e.inputSize as number,
      rank: e.rank as number,
      hiddenSize: e.hiddenSize as number,
    };
    const weight = (name: string, shape: [number, number]): Float32Array => {
      const t = tensors[name];
      if (t === undefined) return bad(`tensor '${name}' is missing`);
      if (t.dtype !== 'f32') bad(`tensor '${name}' is ${t.dtype}, not f32`);
      if (t.shape.length !== 2 || t.shape[0] !== shape[0] || t.shape[1] !== shape[1])
        throw new ShapeMismatchError(shape, t.shape, `tensor '${name}' of ${path}`);
      const data = t.data as Float32Array;
      for (let j = 0; j < data.length; j++)
        if (!Number.isFinite(data[j]!)) throw new NonFiniteError(`tensor '${name}' of ${path}`, j, data[j]!);
      return data;
    };
    out.push(
      new MlpPredictor({
        block,
        ...sizes,
        fc1: weight(fc1Name(block), [sizes.rank, sizes.inputSize]),
        fc2: weight(fc2Name(block), [sizes.hiddenSize, sizes.rank]),
        threshold: e.threshold as number,
        label,
      }),
    );
  }
  const expected = new Set(out.flatMap((p) => [fc1Name(p.block), fc2Name(p.block)]));
  for (const name of Object.keys(tensors))
    if (!expected.has(name)) bad(`tensor '${name}' belongs to no predictor in the metadata`);
  return out;
}
