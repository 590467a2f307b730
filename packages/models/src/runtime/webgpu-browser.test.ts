// The hf-tiny checkpoints and tiny-lm on the WebGPU backend through navigator.gpu in headless Chromium
// (SwiftShader, --enable-unsafe-webgpu): the built packages load through an import map, the page
// builds the model from the checkpoint's files and compares greedy tokens and logits with the same
// model on the reference backend in the page. Skipped, with a message, without Chromium or an adapter.
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describeInChromium, noWebGpuAdapter } from '@sparsekit/test-utils';
import { expect, it } from 'vitest';

const packages = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const fixture = '/models/src/hf/fixtures/hf-tiny';

const PAGE = `<!doctype html>
<script type="importmap">
{ "imports": {
  "@sparsekit/core": "/core/dist/index.js",
  "@sparsekit/sparse-formats": "/sparse-formats/dist/index.js",
  "@sparsekit/kernels-gpu": "/kernels-gpu/dist/index.js",
  "@sparsekit/models": "/models/dist/index.js",
  "@huggingface/tokenizers": "data:text/javascript,export class Tokenizer {}"
} }
</script>
<body>running</body>
<script type="module">
import { decodeSafetensors, Tensor } from '@sparsekit/core';
import { referenceBackend } from '@sparsekit/sparse-formats';
import { createGpuBackend } from '@sparsekit/kernels-gpu';
import { backendRef, configFromHf, generate, generateAsync, paramsFromHf, TransformerLM } from '@sparsekit/models';
try {
  const gpu = await createGpuBackend();
  const results = [];
  // The three hf-tiny checkpoints and the bundled tiny-lm, each built from its files in the page.
  for (const dir of ['${fixture}/gpt2', '${fixture}/opt', '${fixture}/llama', '/models/tiny-lm']) {
    const config = configFromHf(await (await fetch(dir + '/config.json')).json());
    const bytes = new Uint8Array(await (await fetch(dir + '/model.safetensors')).arrayBuffer());
    const { tensors } = decodeSafetensors(bytes);
    const source = { where: dir, names: () => Object.keys(tensors), get: (n) => tensors[n]?.astype('f32') };
    const build = (backend) => {
      const ref = backendRef(backend);
      return new TransformerLM(config, paramsFromHf(config, source, ref), ref);
    };
    const onGpu = build(gpu);
    const cpu = build(referenceBackend);
    const prompt = [1, 7, 3, 30, 2, 9, 11, 4].map((t) => t % config.vocabSize);
    const ids = new Tensor('i32', [1, prompt.length], Int32Array.from(prompt));
    const a = (await onGpu.logitsAsync(ids)).data, b = cpu.logits(ids).data;
    let worst = 0;
    for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]) / (1 + Math.abs(b[i])));
    const options = { maxNewTokens: 8, stopTokens: [] };
    const tokens = (await generateAsync(onGpu, prompt.slice(0, 4), options)).tokens;
    results.push({ dir, worst, tokens, want: generate(cpu, prompt.slice(0, 4), options).tokens });
  }
  report({ adapter: gpu.adapter, results });
  gpu.dispose();
} catch (error) {
  report({ error: String(error && error.stack || error) });
}
</script>`;

describeInChromium('a model on WebGPU in headless Chromium (navigator.gpu)', packages, PAGE, (server) => {
  it('gpt2, opt, llama and tiny-lm: the reference backend greedy tokens, with the same logits', async () => {
    // A hang guard, not a speed target: four models on SwiftShader, beside the other suites on 2 cores.
    const result = await server().run('', ['--enable-unsafe-webgpu'], 300_000);
    if (noWebGpuAdapter(result, 'webgpu-browser.test.ts')) return;
    expect(result.error).toBeUndefined();
    expect(typeof result.adapter).toBe('string');
    const results = result.results as Array<{ dir: string; worst: number; tokens: number[]; want: number[] }>;
    expect(results.map((r) => r.dir.split('/').at(-1))).toEqual(['gpt2', 'opt', 'llama', 'tiny-lm']);
    for (const r of results) {
      expect(r.worst, r.dir).toBeLessThan(2e-4);
      expect(r.tokens, r.dir).toEqual(r.want);
    }
  }, 330_000);
});
