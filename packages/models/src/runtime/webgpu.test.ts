import { Tensor } from '@sparsekit/core';
import { GpuBackend, NoGpuAdapterError } from '@sparsekit/kernels-gpu';
import { afterAll, describe, expect, it } from 'vitest';
import { hfTinyDir, hfTinyExpected } from '../hf/hf-tiny.test-util.js';
import { loadHfModel, tinyLmPath } from '../node.js';
import { generate, generateAsync } from './generate.js';

// The same models on the asynchronous flavour of the backend contract: WebGPU on whatever adapter
// exists (CI: Mesa lavapipe). Skipped, with the reason, where there is none.
const gpu = await GpuBackend.create().catch((error: unknown) => {
  if (!(error instanceof NoGpuAdapterError)) throw error;
  return error;
});
afterAll(() => {
  if (gpu instanceof GpuBackend) gpu.dispose();
});
const suite = gpu instanceof GpuBackend ? describe : describe.skip;

suite(`models on the WebGPU backend${gpu instanceof GpuBackend ? '' : ` (skipped: ${(gpu as Error).message})`}`, () => {
  const backend = gpu as GpuBackend;

  it.each(['gpt2', 'opt', 'llama'] as const)(
    '%s: same greedy tokens and logits as the CPU backend',
    async (family) => {
      const cpu = (await loadHfModel(hfTinyDir(family))).model;
      const onGpu = (await loadHfModel(hfTinyDir(family), { backend })).model;
      const want = hfTinyExpected(family);
      const ids = new Tensor('i32', [1, want.tokens.length], Int32Array.from(want.tokens));
      expect((await onGpu.logitsAsync(ids)).data).toAllClose(cpu.logits(ids).data, {
        atol: 2e-4,
        rtol: 2e-4,
      });
      const prompt = want.tokens.slice(0, 4);
      const options = { maxNewTokens: 8, stopTokens: [] };
      expect((await generateAsync(onGpu, prompt, options)).tokens).toEqual(
        generate(cpu, prompt, options).tokens,
      );
      // The synchronous methods refuse an asynchronous backend, saying what to use instead.
      expect(() => onGpu.logits(ids)).toThrow(/asynchronous.*logitsAsync/);
    },
  );

  it('a block mask runs on the block-sparse attention kernel, as on the CPU', async () => {
    const cpu = (await loadHfModel(hfTinyDir('llama'))).model;
    const onGpu = (await loadHfModel(hfTinyDir('llama'), { backend })).model;
    const want = hfTinyExpected('llama');
    const ids = new Tensor('i32', [1, 12], Int32Array.from(want.tokens.slice(0, 12)));
    const mask = {
      kind: 'blocks' as const,
      blockSize: 4,
      kvBlocks: [Int32Array.of(0), Int32Array.of(0, 1), Int32Array.of(0, 2)],
      causal: true,
    };
    const masked = cpu.logits(ids, { mask }).data;
    const before = backend.stats.attentionOnKernel;
    expect((await onGpu.logitsAsync(ids, { mask })).data).toAllClose(masked, { atol: 2e-4, rtol: 2e-4 });
    // Every layer's key/value heads ran on the kernel (a CPU fallback would not count here).
    const c = onGpu.config;
    expect(backend.stats.attentionOnKernel - before).toBe(c.numLayers * c.numKvHeads);
    // The mask matters: the full causal logits differ.
    expect(cpu.logits(ids).data).not.toEqual(masked);
  });

  it('tiny-lm: same greedy continuation as the CPU backend', async () => {
    const { model: cpu, tokenizer } = await loadHfModel(tinyLmPath());
    const { model: onGpu } = await loadHfModel(tinyLmPath(), { backend });
    const prompt = tokenizer!.encode('The whale swam');
    const options = { maxNewTokens: 12, stopTokens: [] };
    expect((await generateAsync(onGpu, prompt, options)).tokens).toEqual(
      generate(cpu, prompt, options).tokens,
    );
  });
});
