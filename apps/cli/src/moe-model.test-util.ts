// A small mixture-of-experts model for the tests, since none is bundled: tiny-lm with each MLP split
// by its hidden channels into 8 experts and a random top-2 gate, saved in Mixtral's layout.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Rng } from '@sparsekit/core';
import {
  type BlockParams,
  backendRef,
  denseMatrix,
  Linear,
  splitGatedMlp,
  TransformerLM,
} from '@sparsekit/models';
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
    const H = mlp.gate.inFeatures;
    const experts = splitGatedMlp(mlp, EXPERTS, block, backends);
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
