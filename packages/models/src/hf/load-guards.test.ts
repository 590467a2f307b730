// Regression tests of the loader's guards against hostile or clumsy folders.
import {
  cpSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InvalidFormatError, Tensor, UnsupportedDTypeError } from '@sparsekit/core';
import { readSafetensors, writeSafetensors } from '@sparsekit/core/node';
import { bytesReadByProcess, safetensorsWithHole } from '@sparsekit/test-utils';
import { afterAll, describe, expect, it } from 'vitest';
import { hfTinyDir } from './hf-tiny.test-util.js';
import { loadHfModel } from './load.js';
import { saveModel } from './save.js';
import { tinyLmPath } from './tiny-lm.js';

const work = mkdtempSync(join(tmpdir(), 'sparsekit-guards-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

function copy(name: string): string {
  const dir = join(work, name);
  cpSync(hfTinyDir('llama'), dir, { recursive: true });
  return dir;
}

describe('loader guards', () => {
  it('reads only the tensors the model uses: a 200 MB unused tensor is never read', async () => {
    // tiny-lm's 3.4 MB of weights plus 200 MB the architecture does not use (a file hole: no disk).
    const dir = join(work, 'unused-tensor');
    mkdirSync(dir);
    for (const file of ['config.json', 'tokenizer.json']) cpSync(join(tinyLmPath(), file), join(dir, file));
    const unused = 200 * 2 ** 20;
    safetensorsWithHole(join(tinyLmPath(), 'model.safetensors'), join(dir, 'model.safetensors'), unused);
    const reference = await loadHfModel(tinyLmPath());
    const readBefore = bytesReadByProcess();
    const buffersBefore = process.memoryUsage().arrayBuffers;
    const { model } = await loadHfModel(dir);
    const buffersGrowth = process.memoryUsage().arrayBuffers - buffersBefore;
    const readAfter = bytesReadByProcess();
    if (readBefore !== undefined && readAfter !== undefined)
      expect(readAfter - readBefore).toBeLessThan(20 * 2 ** 20);
    expect(buffersGrowth).toBeLessThan(unused / 4);
    const ids = new Tensor('i32', [1, 4], Int32Array.of(5, 17, 100, 3));
    expect(model.logits(ids).data).toEqual(reference.model.logits(ids).data);
  });

  it('refuses shard names in model.safetensors.index.json that leave the folder', async () => {
    for (const [name, shard] of [
      ['parent', '../outside.safetensors'],
      ['absolute', '/etc/passwd'],
      ['nested', 'sub/model.safetensors'],
      ['not-a-string', 42],
    ] as const) {
      const dir = copy(`index-${name}`);
      renameSync(join(dir, 'model.safetensors'), join(dir, 'shard.safetensors'));
      writeFileSync(
        join(dir, 'model.safetensors.index.json'),
        JSON.stringify({
          weight_map: { 'model.embed_tokens.weight': 'shard.safetensors', 'model.norm.weight': shard },
        }),
      );
      await expect(loadHfModel(dir)).rejects.toThrow(InvalidFormatError);
      await expect(loadHfModel(dir)).rejects.toThrow(/file names inside the model folder/);
    }
  });

  it('refuses integer weights instead of reading them as floats', async () => {
    const dir = copy('int-weights');
    const { tensors } = await readSafetensors(join(dir, 'model.safetensors'));
    const w = tensors['model.layers.0.mlp.up_proj.weight']!;
    tensors['model.layers.0.mlp.up_proj.weight'] = new Tensor(
      'i32',
      w.shape,
      Int32Array.from(w.toFloat32Array(), (v) => Math.round(v * 100)),
    );
    await writeSafetensors(join(dir, 'model.safetensors'), tensors);
    await expect(loadHfModel(dir)).rejects.toThrow(UnsupportedDTypeError);
    await expect(loadHfModel(dir)).rejects.toThrow(/up_proj/);
  });

  it('decodes no tokens to the empty string', async () => {
    const { tokenizer } = await loadHfModel(hfTinyDir('llama'));
    expect(tokenizer!.decode([])).toBe('');
    expect(JSON.parse(readFileSync(join(hfTinyDir('llama'), 'config.json'), 'utf8')).model_type).toBe(
      'llama',
    );
  });
});

describe('file checks name the real cause', () => {
  it('a folder or a symbolic-link loop where model.safetensors belongs is said to be one, not "missing"', async () => {
    const folder = copy('weights-folder');
    rmSync(join(folder, 'model.safetensors'));
    mkdirSync(join(folder, 'model.safetensors'));
    await expect(loadHfModel(folder)).rejects.toThrow(/is a folder/);
    const loop = copy('weights-loop');
    rmSync(join(loop, 'model.safetensors'));
    symlinkSync(join(loop, 'model.safetensors'), join(loop, 'model.safetensors'));
    await expect(loadHfModel(loop)).rejects.toThrow(/loops/);
  });
});

describe('saving keeps what it does not compute', () => {
  it("keeps the source config's fields (OPT's pad_token_id) and copies the tokenizer and generation files", async () => {
    const dir = join(work, 'opt-source');
    cpSync(hfTinyDir('opt'), dir, { recursive: true });
    writeFileSync(join(dir, 'generation_config.json'), JSON.stringify({ max_new_tokens: 7 }));
    const { model } = await loadHfModel(dir);
    const out = join(work, 'opt-saved');
    await saveModel(model, out);
    const saved = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
    expect(saved.pad_token_id).toBe(0);
    expect(saved.model_type).toBe('opt');
    expect(readFileSync(join(out, 'tokenizer.json'), 'utf8')).toBe(
      readFileSync(join(dir, 'tokenizer.json'), 'utf8'),
    );
    expect(JSON.parse(readFileSync(join(out, 'generation_config.json'), 'utf8'))).toEqual({
      max_new_tokens: 7,
    });
    const back = await loadHfModel(out);
    expect(back.tokenizer).toBeDefined();
  });
});

describe('size bounds', () => {
  it('refuses a JSON file of the folder past 64 MiB before reading it', async () => {
    const dir = copy('huge-tokenizer');
    const { openSync, ftruncateSync, closeSync } = await import('node:fs');
    const fd = openSync(join(dir, 'tokenizer.json'), 'r+');
    ftruncateSync(fd, 65 * 2 ** 20); // sparse: no 65 MiB written
    closeSync(fd);
    await expect(loadHfModel(dir)).rejects.toThrow(/65 MiB/);
    expect((await loadHfModel(dir, { tokenizer: false })).tokenizer).toBeUndefined();
  });
});
