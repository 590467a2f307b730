// A small mixture-of-experts model for the tests, since none is bundled: tiny-lm with each MLP split
// by its hidden channels into 8 experts and a random top-2 gate, saved in Mixtral's layout.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Rng } from '@sparsekit/core';
import { type BlockParams, backendRef, denseMatrix, Linear, TransformerLM } from '@sparsekit/models';
import { loadHfModel, saveModel, tinyLmPath } from '@sparsekit/models/node';
import { softmaxTopK } from '@sparsekit/moe-router';

type Gated = Extract<BlockParams['mlp'], { kind: 'gated' }>;

export const EXPERTS = 8;
export const TOP_K = 2;

/** Writes the model to `dir` (config.json with num_local_experts, model.safetensors, tokenizer.json). */
export async function saveTinyMixtral(dir: string, seed = 1): Promise<void> {
  const backends = backendRef();
  const { model: dense } = await loadHfModel(tinyLmPath());
  const rng = new Rng(seed);
  const linear = (name: string, data: Float32Array, rows: number, cols: number) =>
    new Linear(name, denseMatrix(data, rows, cols), undefined, backends);
  const blocks = dense.params.blocks.map((b, block): BlockParams => {
    const mlp = b.mlp as Gated;
    const [I, H] = [mlp.gate.outFeatures, mlp.gate.inFeatures];
    const per = I / EXPERTS;
    const [g, u, d] = [mlp.gate, mlp.up, mlp.down].map((l) => l.getWeight().data);
    const experts = Array.from({ length: EXPERTS }, (_, e): Gated => {
      const down = new Float32Array(H * per);
      for (let o = 0; o < H; o++) for (let c = 0; c < per; c++) down[o * per + c] = d![o * I + e * per + c]!;
      const name = `layers.${block}.mlp.experts.${e}`;
      return {
        kind: 'gated',
        gate: linear(`${name}.gate_proj`, g!.slice(e * per * H, (e + 1) * per * H), per, H),
        up: linear(`${name}.up_proj`, u!.slice(e * per * H, (e + 1) * per * H), per, H),
        down: linear(`${name}.down_proj`, down, H, per),
      };
    });
    const gate = linear(`layers.${block}.mlp.gate`, rng.normalArray(EXPERTS * H, 0, 0.3), EXPERTS, H);
    return {
      ...b,
      mlp: { kind: 'moe', gate, router: softmaxTopK({ numExperts: EXPERTS, k: TOP_K }), experts },
    };
  });
  const config = {
    ...dense.config,
    intermediateSize: dense.config.intermediateSize / EXPERTS,
    moe: { numExperts: EXPERTS, expertsPerToken: TOP_K },
  };
  const moe = new TransformerLM(config, { ...dense.params, blocks }, backends);
  await saveModel(moe, dir, { tokenizerJson: readFileSync(join(tinyLmPath(), 'tokenizer.json'), 'utf8') });
}
