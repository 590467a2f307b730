import type { Tensor } from '@sparsekit/core';
import { saveModel } from '@sparsekit/models/node';
import {
  FORMAT_NAMES,
  type FormatName,
  fromDense,
  type SparseMatrix,
  sparsity,
} from '@sparsekit/sparse-formats';
import { choiceFlag, patternFlag, stringFlag, UsageError } from '../args.js';
import type { Command } from '../command.js';
import { CliError, loadModel, modelDir } from '../model-io.js';
import { outDirFlag, writeDir } from '../out-dir.js';

const TARGETS = [...FORMAT_NAMES, 'compressed-tensors'] as const;

export const convertCommand: Command = {
  name: 'convert',
  summary: 'store the decoder layers in another format, or export compressed-tensors',
  help: `Usage: sparsekit convert --to FORMAT --out DIR [--model DIR] [--pattern N:M] [--block RxC] [--dtype f32|f16|bf16]

Re-stores every decoder linear layer: 'dense' writes a plain Hugging Face checkpoint; a sparse format
(${FORMAT_NAMES.filter((f) => f !== 'dense').join(', ')}) keeps only the nonzeros, in the layout
'sparsekit' models load; 'compressed-tensors' writes the sparse-bitmask layout of llm-compressor /
vLLM (Hugging Face names, <layer>.compressed / .bitmask / .shape / .row_offsets, and a
sparsity_config in config.json). Values are never changed (except rounded to --dtype f16 / bf16):
converting back gives the same weights.

Flags:
  --model DIR      Hugging Face folder (default: the bundled tiny-lm)
  --to FORMAT      ${TARGETS.join(' | ')}
  --pattern N:M    for --to nm (default 2:4); every group must already hold at most N nonzeros
  --block RxC      for --to bsr (default 4x4)
  --dtype D        value type: f32 (default) or f16 (sparse formats and dense), bf16 (dense only:
                   every weight of the Hugging Face checkpoint, torch_dtype set to match)
  --out DIR        where to write (required; a new or empty folder, written whole at the end)
  --force          replace --out if it already holds files
  --json           print the result as JSON

Examples:
  sparsekit convert --model out/tiny-lm-wanda50 --to csr --out out/tiny-lm-wanda50-csr
  sparsekit convert --model out/tiny-lm-2of4 --to nm --pattern 2:4 --dtype f16 --out out/2of4-f16
  sparsekit convert --model out/tiny-lm-wanda50 --to compressed-tensors --out out/wanda50-ct
  sparsekit convert --model out/tiny-lm-2of4 --to dense --out out/tiny-lm-2of4-dense
  sparsekit convert --model ./my-llama --to dense --dtype bf16 --out ./my-llama-bf16`,
  flags: {
    model: { type: 'string' },
    to: { type: 'string' },
    pattern: { type: 'string' },
    block: { type: 'string' },
    dtype: { type: 'string' },
    out: { type: 'string' },
    force: { type: 'boolean' },
  },
  async run({ flags, ui }) {
    if (flags.to === undefined) throw new UsageError(`--to is required (${TARGETS.join(', ')})`, 'convert');
    const to = choiceFlag('convert', flags, 'to', TARGETS, 'dense');
    const dtype = choiceFlag('convert', flags, 'dtype', ['f32', 'f16', 'bf16'] as const, 'f32');
    if (dtype === 'bf16' && to !== 'dense')
      throw new UsageError('--dtype bf16 is for --to dense (the sparse formats store f32 or f16)', 'convert');
    const dir = modelDir(stringFlag(flags, 'model'));
    const out = outDirFlag('convert', flags, dir, 'the folder to write to');
    const { n, m } = patternFlag('convert', stringFlag(flags, 'pattern') ?? '2:4');
    const blockMatch = /^(\d+)x(\d+)$/.exec(stringFlag(flags, 'block') ?? '4x4');
    if (blockMatch === null) throw new UsageError('--block must look like RxC, e.g. 4x4', 'convert');
    const blockShape = [Number(blockMatch[1]), Number(blockMatch[2])] as const;
    const { model, config } = await loadModel(dir, undefined, { tokenizer: false });
    const format: FormatName = to === 'compressed-tensors' ? 'bitmask' : to;
    const pack = (w: Tensor<'f32'>): SparseMatrix =>
      fromDense(w, format, {
        threshold: 0,
        ...(format === 'dense' ? {} : { dtype: dtype as 'f32' | 'f16' }),
        ...(format === 'nm' ? { n, m } : {}),
        ...(format === 'bsr' ? { blockShape } : {}),
        ...(format === 'csr' || format === 'csc' || format === 'bsr' ? { indexType: 'auto' as const } : {}),
      });
    const layers = model.linearLayers().map((layer) => {
      const matrix = pack(layer.getWeight());
      layer.setMatrix(matrix);
      return { name: layer.name, format: matrix.format, sparsity: sparsity(matrix) };
    });
    if (to === 'compressed-tensors' && config.family === 'gpt2')
      throw new CliError(
        'compressed-tensors export needs per-projection weights; GPT-2 fuses q/k/v into one Conv1D',
        'export a llama or opt model, or convert GPT-2 to a sparsekit format (e.g. --to bitmask)',
      );
    // saveModel copies the tokenizer and generation files of the source folder itself.
    await writeDir(out, (tmp) =>
      saveModel(model, tmp, {
        layout: to === 'compressed-tensors' ? 'compressed-tensors' : to === 'dense' ? 'hf' : 'packed',
        ...(to === 'dense' ? { dtype } : {}),
      }),
    );
    const overall = layers.reduce((s, l) => s + l.sparsity, 0) / Math.max(1, layers.length);
    ui.say(
      `converted ${layers.length} layers to ${to} (mean sparsity ${(100 * overall).toFixed(1)}%); wrote ${out.path}`,
    );
    return { model: dir, out: out.path, to, layers };
  },
};
