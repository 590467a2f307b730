import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Tensor } from '@sparsekit/core';
import { randomLlama } from '@sparsekit/models';
import { loadHfModel } from '@sparsekit/models/node';
import { describe, expect, it } from 'vitest';
import { SPEED_SHAPES, speedModelParameters, writeSpeedModel } from './index.js';

describe('speed models', () => {
  it('writes a loadable Llama folder of the stated shape, the same bytes for the same seed, once', async () => {
    const root = mkdtempSync(join(tmpdir(), 'speed-model-'));
    const a = await writeSpeedModel(join(root, 'a'), 'micro', 3);
    const b = await writeSpeedModel(join(root, 'b'), 'micro', 3);
    const bytes = (d: string) => readFileSync(join(d, 'model.safetensors'));
    expect(bytes(a).equals(bytes(b))).toBe(true);
    const { model } = await loadHfModel(a);
    const s = SPEED_SHAPES.micro;
    expect(model.parameterCount()).toBe(speedModelParameters(s));
    expect(model.config.intermediateSize).toBe(s.intermediate);
    const ids = new Tensor('i32', [1, 5], Int32Array.of(1, 2, 3, 4, 5));
    const logits = model.logits(ids);
    expect(logits.data.every(Number.isFinite)).toBe(true);
    // The same model built in memory (no files) computes the same logits.
    expect(randomLlama(s, 3).logits(ids).data).toEqual(logits.data);
    // Written again only when the shape or seed differs.
    const mtime = statSync(join(a, 'model.safetensors')).mtimeMs;
    await writeSpeedModel(a, 'micro', 3);
    expect(statSync(join(a, 'model.safetensors')).mtimeMs).toBe(mtime);
    await writeSpeedModel(a, 'micro', 4);
    expect(bytes(a).equals(bytes(b))).toBe(false);
    await expect(writeSpeedModel(a, 'llama-9000')).rejects.toThrow(/must be one of/);
  });
});
