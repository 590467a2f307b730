import { mkdir, readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { f32ArrayToBf16, f32ArrayToF16, InvalidArgumentError, Tensor } from '@sparsekit/core';
import { writeFileAtomic } from '@sparsekit/core/node';
import { fromDense, type SparseMatrix, sparsity } from '@sparsekit/sparse-formats';
import { saveSparseSafetensors } from '@sparsekit/sparse-formats/node';
import { configToHf } from '../config.js';
import { UnsupportedModelError } from '../errors.js';
import type { TransformerLM } from '../runtime/model.js';
import { hfLinearName, paramsToHf } from './names.js';

export interface SaveOptions {
  /**
   * 'hf' (default): every weight dense f32 under the Hugging Face names, loadable by any HF tool.
   * 'packed': each decoder linear layer in the format it is held in (CSR, N:M, bitmask, ...), under
   * its runtime name; the rest under HF names.
   * 'compressed-tensors': the sparse-bitmask layout of llm-compressor / vLLM (decoder linears as
   * bitmasks under their HF names, a `quantization_config` saying so; llama and opt only).
   * All three load with `loadHfModel`. 'dense' is the former name of 'hf'.
   */
  layout?: SaveLayout;
  /**
   * Storage type of the weights written dense under Hugging Face names: 'f32' (default), or 'f16' /
   * 'bf16' (half the bytes; values rounded to nearest even; `torch_dtype` says so). Packed and
   * compressed-tensors layers keep their own formats.
   */
  dtype?: SaveDType;
  /** A tokenizer.json to write into the folder (default: the one of the folder the model came from). */
  tokenizerJson?: string;
}

export type SaveLayout = 'hf' | 'packed' | 'compressed-tensors' | 'dense';
export type SaveDType = 'f32' | 'f16' | 'bf16';

const TORCH_DTYPES: Record<SaveDType, string> = { f32: 'float32', f16: 'float16', bf16: 'bfloat16' };

/** Files of a Hugging Face folder that describe the tokenizer and generation, copied on save. */
const COMPANION_FILES = [
  'tokenizer.json',
  'tokenizer_config.json',
  'special_tokens_map.json',
  'generation_config.json',
] as const;

/** Source config fields that describe weights no longer stored that way (`torch_dtype` is rewritten). */
const DROPPED_FIELDS = ['quantization_config', 'compression_config', 'dtype'] as const;

/**
 * Write `model` to `dir` (config.json, model.safetensors, and the tokenizer and generation files of
 * the folder it was loaded from); each file atomically.
 */
export async function saveModel(model: TransformerLM, dir: string, options: SaveOptions = {}): Promise<void> {
  const c = model.config;
  if (c.normWidth !== undefined && c.family !== 'llama') {
    throw new UnsupportedModelError(
      'saving folded norms',
      `${c.family} checkpoints have no weightless RMSNorm; only llama`,
    );
  }
  const widths = [
    { at: 'embeddings' } as const,
    ...model.params.blocks.flatMap((_, block) => [
      { at: 'attention', block } as const,
      { at: 'mlp', block } as const,
    ]),
  ].map((point) => model.streamWidth(point));
  widths.pop(); // the last block's output (the head's input) may keep another width
  if (widths.some((w) => w !== c.hiddenSize)) {
    throw new InvalidArgumentError(
      'model',
      'partially sliced',
      `every point of the residual stream must have one width to save (widths: ${widths.join(', ')})`,
    );
  }
  // Before anything is written: configToHf refuses what it cannot describe. The source config's other
  // fields (pad_token_id, transformers_version, ...) are kept; the runtime's own fields win.
  const source = { ...(model.source?.config ?? {}) };
  for (const field of DROPPED_FIELDS) delete source[field];
  const config: Record<string, unknown> = { ...source, ...configToHf(model.config) };
  const layout = options.layout ?? 'hf';
  const dtype = options.dtype ?? 'f32';
  if (!(dtype in TORCH_DTYPES))
    throw new InvalidArgumentError('dtype', dtype, `must be one of ${Object.keys(TORCH_DTYPES).join(', ')}`);
  config.torch_dtype = TORCH_DTYPES[dtype];
  if (layout === 'compressed-tensors' && c.family !== 'llama' && c.family !== 'opt')
    throw new UnsupportedModelError(
      'compressed-tensors export',
      `${c.family} fuses or names its projections differently; export llama or opt, or use layout 'packed'`,
    );
  await mkdir(dir, { recursive: true });
  const packed = layout === 'packed';
  const compressed = layout === 'compressed-tensors';
  const tensors: Record<string, Tensor> = {};
  for (const [name, [shape, values]] of paramsToHf(model.config, model.params, {
    linears: !packed && !compressed,
  })) {
    tensors[name] =
      dtype === 'f16'
        ? new Tensor('f16', shape, f32ArrayToF16(values))
        : dtype === 'bf16'
          ? new Tensor('bf16', shape, f32ArrayToBf16(values))
          : new Tensor('f32', shape, values);
  }
  const matrices: Record<string, SparseMatrix> = {};
  let zeros = 0;
  let total = 0;
  for (const layer of packed || compressed ? model.linearLayers() : []) {
    const name = compressed ? hfLinearName(c.family as 'llama' | 'opt', layer.name) : layer.name;
    const matrix =
      compressed && layer.matrix.format !== 'bitmask'
        ? fromDense(layer.getWeight(), 'bitmask', { threshold: 0 })
        : layer.matrix;
    matrices[`${name}.weight`] = matrix;
    zeros += sparsity(matrix) * layer.outFeatures * layer.inFeatures;
    total += layer.outFeatures * layer.inFeatures;
    if (layer.bias !== undefined)
      tensors[`${name}.bias`] = new Tensor('f32', [layer.outFeatures], layer.bias);
  }
  if (compressed)
    config.quantization_config = {
      quant_method: 'compressed-tensors',
      format: 'dense',
      sparsity_config: {
        format: 'sparse-bitmask',
        global_sparsity: total === 0 ? 0 : zeros / total,
        sparsity_structure: 'unstructured',
        targets: ['Linear'],
        ignore: ['lm_head'],
      },
    };
  await saveSparseSafetensors(join(dir, 'model.safetensors'), matrices, tensors, { format: 'pt' });
  await writeText(join(dir, 'config.json'), `${JSON.stringify(config, null, 2)}\n`);
  if (options.tokenizerJson !== undefined)
    await writeText(join(dir, 'tokenizer.json'), options.tokenizerJson);
  // The companions of the source folder (unless saving over it, or given a tokenizer above).
  const from = model.source?.dir;
  if (from !== undefined && resolve(from) !== resolve(dir)) {
    for (const name of COMPANION_FILES) {
      if (name === 'tokenizer.json' && options.tokenizerJson !== undefined) continue;
      let text: string;
      try {
        text = await readFile(join(from, name), 'utf8');
      } catch {
        continue; // the source folder has no such file
      }
      await writeText(join(dir, name), text);
    }
  }
}

function writeText(path: string, text: string): Promise<void> {
  return writeFileAtomic(path, (file) => file.writeFile(text, 'utf8'));
}
