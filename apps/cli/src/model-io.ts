// Loading models and text for the commands, with errors that say what to do next.
import { existsSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Tensor } from '@sparsekit/core';
import { calibrationWindows } from '@sparsekit/eval-harness';
import type { HfTokenizer } from '@sparsekit/models';
import { type LoadedModel, loadHfModel, tinyLmPath } from '@sparsekit/models/node';
import { type AnyBackend, byteSize, type SparseMatrix, sparsity } from '@sparsekit/sparse-formats';

/** A failure with a hint: exit code 1, message then "hint: ...". */
export class CliError extends Error {
  constructor(
    message: string,
    readonly hint?: string,
  ) {
    super(message);
    this.name = 'CliError';
  }
}

/** The model folder a command works on: --model, or a bundled model (default tiny-lm). */
export function modelDir(flag: string | undefined, bundled: string = tinyLmPath()): string {
  return flag === undefined ? bundled : resolve(flag);
}

/** Whether two paths name one folder, through symbolic links too (a missing path is compared as written). */
export function samePath(a: string, b: string): boolean {
  const real = (p: string) => (existsSync(p) ? realpathSync(p) : resolve(p));
  return real(a) === real(b);
}

export async function loadModel(
  dir: string,
  backend?: AnyBackend,
  options: { tokenizer?: boolean } = {},
): Promise<LoadedModel> {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    throw new CliError(
      `no model folder at ${dir}`,
      'pass --model with a Hugging Face folder (config.json, model.safetensors, tokenizer.json), or leave --model out to use the bundled tiny-lm',
    );
  }
  if (!existsSync(join(dir, 'config.json'))) {
    throw new CliError(
      `${dir} has no config.json, so it is not a Hugging Face model folder`,
      'point --model at the folder that holds config.json and model.safetensors',
    );
  }
  return loadHfModel(dir, { ...options, ...(backend === undefined ? {} : { backend }) });
}

export function requireTokenizer(loaded: LoadedModel, dir: string): HfTokenizer {
  if (loaded.tokenizer === undefined) {
    throw new CliError(
      `${dir} has no tokenizer.json`,
      'copy the tokenizer.json of the model into the folder',
    );
  }
  return loaded.tokenizer;
}

export function readText(path: string, what: string): string {
  const full = resolve(path);
  if (!existsSync(full)) throw new CliError(`${what} file not found: ${full}`, 'check the path');
  if (!statSync(full).isFile())
    throw new CliError(`${what} ${full} is not a file`, 'give the path of a text file');
  // A byte-order mark is not part of the text.
  return readFileSync(full, 'utf8').replace(/^\uFEFF/, '');
}

/** tiny-lm's held-out test text (the default evaluation text). */
export function builtinText(which: 'test' | 'calibration'): string {
  return readFileSync(join(tinyLmPath(), `${which}.txt`), 'utf8');
}

/**
 * The default text of a command: tiny-lm's own, which only tiny-lm's vocabulary reads; another model
 * needs text given with `flag`.
 */
export function defaultText(which: 'test' | 'calibration', dir: string, flag: string): string {
  // tiny-lm itself, or a model saved from it (same tokenizer.json): its text is the right one.
  const sameTokenizer = () => {
    try {
      return (
        readFileSync(join(dir, 'tokenizer.json'), 'utf8') ===
        readFileSync(join(tinyLmPath(), 'tokenizer.json'), 'utf8')
      );
    } catch {
      return false;
    }
  };
  if (!samePath(dir, tinyLmPath()) && !sameTokenizer())
    throw new CliError(
      `the built-in ${which} text is tiny-lm's, and ${dir} is another model`,
      `give text for this model with ${flag} FILE`,
    );
  return builtinText(which);
}

/** Share of unknown tokens above which a text is refused: the model would be scored on noise. */
const MAX_UNKNOWN = 0.05;

/** Refuse a text that is mostly unknown tokens to the model's tokenizer (when it has an unknown token). */
export function checkKnownText(tokenizer: HfTokenizer, ids: readonly number[], what: string): void {
  const unk = tokenizer.unknownTokenId;
  if (unk === undefined || ids.length === 0) return;
  let unknown = 0;
  for (const id of ids) if (id === unk) unknown++;
  if (unknown / ids.length > MAX_UNKNOWN)
    throw new CliError(
      `${((100 * unknown) / ids.length).toFixed(1)}% of the ${what} is unknown tokens to this model's tokenizer`,
      `give text in the model's language and vocabulary (at most ${100 * MAX_UNKNOWN}% unknown tokens)`,
    );
}

/**
 * Calibration batches as the references draw them (eval-harness's `calibrationWindows`: `samples`
 * seeded random windows of `seqLen` tokens) from a text in the model's vocabulary. `note` is told
 * when the windows must overlap (the text is shorter than all of them together).
 */
export function calibrationBatches(
  tokenizer: HfTokenizer,
  text: string,
  options: { samples: number; seqLen: number; seed: number },
  note?: (line: string) => void,
): Tensor<'i32'>[] {
  const ids = tokenizer.encode(text);
  checkKnownText(tokenizer, ids, 'calibration text');
  if (ids.length <= options.seqLen) {
    throw new CliError(
      `the calibration text has ${ids.length} tokens, fewer than one window of ${options.seqLen}`,
      'give a longer --calib file or a smaller --seq-len',
    );
  }
  return calibrationWindows(ids, {
    ...options,
    onWarning: (message) => note?.(`warning: ${message}; a longer --calib gives more independent samples`),
  });
}

/**
 * A model's linear layers as stored: their weights, the share of them that is zero (counted from
 * the data) and their bytes.
 */
export function linearStats(model: {
  linearLayers(): readonly { inFeatures: number; outFeatures: number; matrix: SparseMatrix }[];
}): { weights: number; sparsity: number; bytes: number } {
  let weights = 0;
  let zeros = 0;
  let bytes = 0;
  for (const l of model.linearLayers()) {
    const n = l.inFeatures * l.outFeatures;
    weights += n;
    zeros += sparsity(l.matrix) * n;
    bytes += byteSize(l.matrix);
  }
  return { weights, sparsity: weights === 0 ? 0 : zeros / weights, bytes };
}
