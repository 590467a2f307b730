import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type ProgressEvent, Rng, Tensor } from '@sparsekit/core';
import { readSafetensors, writeSafetensors } from '@sparsekit/core/node';
import { createWasmBackend, fromDense } from '@sparsekit/sparse-formats';
import { describe, expect, it } from 'vitest';
import { hfTinyDir, hfTinyExpected } from '../hf/hf-tiny.test-util.js';
import { loadHfModel } from '../hf/load.js';
import { generate, sampleToken } from './generate.js';

const fixture = hfTinyDir;
const expected = hfTinyExpected;

describe('generation', () => {
  it('greedy decoding with the cache picks the argmax of full forward passes', async () => {
    const { model } = await loadHfModel(fixture('llama'));
    const prompt = expected('llama').tokens.slice(0, 4);
    const out = generate(model, prompt, { maxNewTokens: 8, stopTokens: [] });
    const sequence = [...prompt];
    for (let i = 0; i < 8; i++) {
      const logits = model.logits(new Tensor('i32', [1, sequence.length], Int32Array.from(sequence)));
      const last = logits.data.subarray((sequence.length - 1) * model.vocabSize);
      sequence.push(last.indexOf(Math.max(...last)));
    }
    expect(out.tokens).toEqual(sequence.slice(4));
    expect(out.decodeTokensPerSecond).toBeGreaterThan(0);
  });

  it('samples reproducibly per seed; top-k 1 and a tiny top-p are greedy', async () => {
    const { model } = await loadHfModel(fixture('gpt2'));
    const prompt = [3, 17, 5];
    const a = generate(model, prompt, { maxNewTokens: 10, temperature: 1, seed: 4, stopTokens: [] });
    const b = generate(model, prompt, { maxNewTokens: 10, temperature: 1, seed: 4, stopTokens: [] });
    expect(a.tokens).toEqual(b.tokens);
    const greedy = generate(model, prompt, { maxNewTokens: 10, stopTokens: [] }).tokens;
    expect(
      generate(model, prompt, { maxNewTokens: 10, temperature: 0.7, topK: 1, stopTokens: [] }).tokens,
    ).toEqual(greedy);
    expect(
      generate(model, prompt, { maxNewTokens: 10, temperature: 0.7, topP: 1e-6, stopTokens: [] }).tokens,
    ).toEqual(greedy);
  });

  it('draws from softmax(logits / T) restricted by top-k and top-p', () => {
    const logits = [2, 1, 0, -1];
    const rng = new Rng(11);
    const counts = [0, 0, 0, 0];
    const draws = 20000;
    for (let i = 0; i < draws; i++) counts[sampleToken(logits, { temperature: 2 }, rng)]!++;
    const weights = logits.map((l) => Math.exp(l / 2));
    const total = weights.reduce((x, y) => x + y);
    counts.forEach((c, i) => {
      expect(c / draws).toBeCloseTo(weights[i]! / total, 1);
    });
    for (let i = 0; i < 2000; i++)
      expect(sampleToken(logits, { temperature: 1, topK: 2 }, rng)).toBeLessThan(2);
    // p(0) = 0.64 at T = 1: top-p 0.6 keeps token 0 only.
    for (let i = 0; i < 200; i++) expect(sampleToken(logits, { temperature: 1, topP: 0.6 }, rng)).toBe(0);
  });
});

describe('calibration capture', () => {
  it('reports every linear layer input per batch, filtered by name, with progress', async () => {
    const { model } = await loadHfModel(fixture('opt'));
    const seen = new Map<string, number[][]>();
    const events: ProgressEvent[] = [];
    const batches = [0, 1, 2].map(
      (b) =>
        new Tensor(
          'i32',
          [2, 5],
          Int32Array.from({ length: 10 }, (_, i) => (b * 7 + i) % 64),
        ),
    );
    await model.calibrate(
      batches,
      (layer, inputs) => {
        seen.set(layer.name, [...(seen.get(layer.name) ?? []), [...inputs.shape]]);
      },
      { filter: (name) => name.startsWith('layers.1.'), onProgress: (e) => events.push(e) },
    );
    expect([...seen.keys()].sort()).toEqual(
      model
        .blockLinearLayers(1)
        .map((l) => l.name)
        .sort(),
    );
    for (const [name, shapes] of seen) {
      const layer = model.linearLayers().find((l) => l.name === name)!;
      expect(shapes).toEqual([
        [10, layer.inFeatures],
        [10, layer.inFeatures],
        [10, layer.inFeatures],
      ]);
    }
    expect(events.map((e) => e.current)).toEqual([1, 2, 3]);
  });
});

describe('kernels and storage', () => {
  it('runs on the wasm backend, dense and packed layers alike, with the same logits', async () => {
    const { model } = await loadHfModel(fixture('llama'));
    const want = expected('llama');
    const ids = new Tensor('i32', [1, want.tokens.length], Int32Array.from(want.tokens));
    const layers = model.linearLayers();
    layers[0]!.setMatrix(fromDense(layers[0]!.getWeight(), 'csr', { threshold: 0.05, indexType: 'u16' }));
    layers[5]!.setMatrix(
      fromDense(layers[5]!.getWeight(), 'nm', {
        n: 2,
        m: 4,
        keep: Uint8Array.from({ length: layers[5]!.inFeatures * layers[5]!.outFeatures }, (_, i) =>
          i % 4 < 2 ? 1 : 0,
        ),
      }),
    );
    const reference = model.logits(ids);
    const backend = await createWasmBackend({ threads: 2 });
    try {
      model.backend = backend;
      expect(model.logits(ids).data).toAllClose(reference.data, { atol: 1e-4, rtol: 1e-4 });
    } finally {
      await backend.dispose();
    }
  });

  it('loads f16 and bf16 checkpoints (converted to f32 on load)', async () => {
    const { tensors } = await readSafetensors(join(fixture('gpt2'), 'model.safetensors'));
    const want = expected('gpt2');
    const ids = new Tensor('i32', [1, want.tokens.length], Int32Array.from(want.tokens));
    const tmp = await mkdtemp(join(tmpdir(), 'sparsekit-half-'));
    try {
      for (const dtype of ['f16', 'bf16'] as const) {
        const dir = join(tmp, dtype);
        await writeSafetensors(
          join(dir, 'model.safetensors'),
          Object.fromEntries(Object.entries(tensors).map(([n, t]) => [n, t.astype(dtype)])),
        );
        await writeFile(join(dir, 'config.json'), readFileSync(join(fixture('gpt2'), 'config.json')));
        const { model } = await loadHfModel(dir);
        // Rounding the weights to 11 (f16) or 8 (bf16) significant bits moves the logits a little.
        expect(model.logits(ids).data).toAllClose(want.logits.flat(), {
          atol: dtype === 'f16' ? 5e-3 : 5e-2,
          rtol: 0,
        });
      }
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
  });

  it('loads a checkpoint sharded with model.safetensors.index.json', async () => {
    const { tensors } = await readSafetensors(join(fixture('llama'), 'model.safetensors'));
    const names = Object.keys(tensors).sort();
    const tmp = await mkdtemp(join(tmpdir(), 'sparsekit-shards-'));
    try {
      const halves = [names.slice(0, 10), names.slice(10)];
      const weightMap: Record<string, string> = {};
      for (const [i, part] of halves.entries()) {
        const file = `model-0000${i + 1}-of-00002.safetensors`;
        await writeSafetensors(join(tmp, file), Object.fromEntries(part.map((n) => [n, tensors[n]!])));
        for (const n of part) weightMap[n] = file;
      }
      await writeFile(
        join(tmp, 'model.safetensors.index.json'),
        JSON.stringify({ metadata: {}, weight_map: weightMap }),
      );
      await writeFile(join(tmp, 'config.json'), readFileSync(join(fixture('llama'), 'config.json')));
      const { model } = await loadHfModel(tmp);
      const want = expected('llama');
      const logits = model.logits(new Tensor('i32', [1, want.tokens.length], Int32Array.from(want.tokens)));
      expect(logits.data).toAllClose(want.logits.flat(), { atol: 1e-4, rtol: 0 });
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
  });
});
