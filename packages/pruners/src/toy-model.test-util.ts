import { type BlockwiseLM, type LinearLayer, Rng, type RunOptions, Tensor } from '@sparsekit/core';

/** Pass a linear layer's input [tokens, width] through the call's `linear.input` hooks (as models do). */
export function linearInput(
  options: RunOptions | undefined,
  layers: readonly LinearLayer[],
  data: Float32Array,
  block: number,
): Float32Array {
  const width = layers[0]!.inFeatures;
  const tokens = data.length / width;
  return (
    options?.hooks?.run(data, [1, tokens, width], {
      site: 'linear.input',
      block,
      batch: 1,
      seq: tokens,
      position: 0,
      layers,
    }) ?? data
  );
}

/** A toy BlockwiseLM: embeddings, then blocks h += down(relu(up(h))), then a head. */
export function toyModel(
  seed: number,
  hidden = 16,
  inner = 32,
  blocks = 2,
  vocab = 20,
): BlockwiseLM & { weights: Float32Array[] } {
  const rng = new Rng(seed);
  const embed = rng.normalArray(vocab * hidden);
  const weights: Float32Array[] = [];
  const layer = (name: string, rows: number, cols: number): LinearLayer & { w: Float32Array } => {
    const l = {
      name,
      inFeatures: cols,
      outFeatures: rows,
      w: rng.normalArray(rows * cols, 0, 0.3),
      getWeight: () => new Tensor('f32', [rows, cols], l.w.slice()),
      setWeight: (t: Tensor<'f32'>) => {
        l.w = t.data.slice();
        weights[layers.indexOf(l)] = l.w;
      },
    };
    return l;
  };
  const layers: Array<LinearLayer & { w: Float32Array }> = [];
  for (let b = 0; b < blocks; b++)
    layers.push(
      layer(`layers.${b}.mlp.up_proj`, inner, hidden),
      layer(`layers.${b}.mlp.down_proj`, hidden, inner),
    );
  layers.forEach((l, i) => {
    weights[i] = l.w;
  });
  const matmul = (x: Float32Array, tokens: number, l: LinearLayer & { w: Float32Array }) => {
    const y = new Float32Array(tokens * l.outFeatures);
    for (let t = 0; t < tokens; t++)
      for (let o = 0; o < l.outFeatures; o++) {
        let s = 0;
        for (let i = 0; i < l.inFeatures; i++) s += x[t * l.inFeatures + i]! * l.w[o * l.inFeatures + i]!;
        y[t * l.outFeatures + o] = s;
      }
    return y;
  };
  const model = {
    weights,
    vocabSize: vocab,
    maxSequenceLength: 64,
    numBlocks: blocks,
    hiddenSize: hidden,
    linearLayers: () => layers,
    blockLinearLayers: (i: number) => layers.slice(2 * i, 2 * i + 2),
    blockLinearGroups: (i: number) => [[layers[2 * i]!], [layers[2 * i + 1]!]],
    embed(ids: Tensor<'i32'>) {
      const out = new Float32Array(ids.size * hidden);
      for (let t = 0; t < ids.size; t++)
        out.set(embed.subarray(ids.data[t]! * hidden, (ids.data[t]! + 1) * hidden), t * hidden);
      return new Tensor('f32', [...ids.shape, hidden], out);
    },
    runBlock(i: number, h: Tensor<'f32'>, options?: RunOptions) {
      const tokens = h.size / hidden;
      const [up, down] = [layers[2 * i]!, layers[2 * i + 1]!];
      const a = matmul(linearInput(options, [up], h.data, i), tokens, up).map((v) => Math.max(0, v));
      const out = h.data.slice();
      const d = matmul(linearInput(options, [down], a, i), tokens, down);
      for (let k = 0; k < out.length; k++) out[k]! += d[k]!;
      return new Tensor('f32', h.shape, out);
    },
    head: (h: Tensor<'f32'>) => h,
    logits: (ids: Tensor<'i32'>) => model.embed(ids),
  };
  return model;
}

export const calibration = (seed: number) => {
  const rng = new Rng(seed);
  return [0, 1, 2].map(
    () =>
      new Tensor(
        'i32',
        [2, 24],
        Int32Array.from({ length: 48 }, () => rng.int(20)),
      ),
  );
};
