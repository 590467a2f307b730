// The hf-tiny Llama checkpoint on the WebGPU backend through navigator.gpu in headless Chromium
// (SwiftShader, --enable-unsafe-webgpu): the built packages load through an import map, the page
// builds the model from the checkpoint's files and compares greedy tokens and logits with the same
// model on the reference backend in the page. Skipped, with a message, without Chromium or an adapter.
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describeInChromium, noWebGpuAdapter } from '@sparsekit/test-utils';
import { expect, it } from 'vitest';

const packages = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const fixture = '/models/src/hf/fixtures/hf-tiny/llama';

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
  const config = configFromHf(await (await fetch('${fixture}/config.json')).json());
  const expected = await (await fetch('${fixture}/expected.json')).json();
  const bytes = new Uint8Array(await (await fetch('${fixture}/model.safetensors')).arrayBuffer());
  const { tensors } = decodeSafetensors(bytes);
  const source = { where: 'page', names: () => Object.keys(tensors), get: (n) => tensors[n]?.astype('f32') };
  const build = (backend) => {
    const ref = backendRef(backend);
    return new TransformerLM(config, paramsFromHf(config, source, ref), ref);
  };
  const gpu = await createGpuBackend();
  const onGpu = build(gpu);
  const cpu = build(referenceBackend);
  const ids = new Tensor('i32', [1, expected.tokens.length], Int32Array.from(expected.tokens));
  const a = (await onGpu.logitsAsync(ids)).data, b = cpu.logits(ids).data;
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]) / (1 + Math.abs(b[i])));
  const prompt = expected.tokens.slice(0, 4), options = { maxNewTokens: 8, stopTokens: [] };
  const tokens = (await generateAsync(onGpu, prompt, options)).tokens;
  report({ adapter: gpu.adapter, worst, tokens, want: generate(cpu, prompt, options).tokens });
  gpu.dispose();
} catch (error) {
  report({ error: String(error && error.stack || error) });
}
</script>`;

describeInChromium('a model on WebGPU in headless Chromium (navigator.gpu)', packages, PAGE, (server) => {
  it('generates the reference backend greedy tokens, with the same logits', async () => {
    const result = await server().run('', ['--enable-unsafe-webgpu']);
    if (noWebGpuAdapter(result, 'webgpu-browser.test.ts')) return;
    expect(result.error).toBeUndefined();
    expect(typeof result.adapter).toBe('string');
    expect(result.worst as number).toBeLessThan(2e-4);
    expect(result.tokens).toEqual(result.want);
  }, 90_000);
});
