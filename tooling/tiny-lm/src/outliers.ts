// A controlled experiment for the pruning-quality table: give tiny-lm the outlier input features of
// large LLMs without changing the function it computes. For a few input channels of every linear
// layer, the activation is multiplied by `scale` and the weight column that reads it divided by
// `scale` (through the norm gains for q/k/v and gate/up, through up_proj's rows for down_proj, and
// through v_proj's rows for o_proj). The logits are unchanged up to rounding; per-weight magnitudes
// are not, which is what one-shot magnitude pruning sees and Wanda / SparseGPT do not.
import { InvalidArgumentError, Rng, Tensor } from '@sparsekit/core';
import type { Linear, TransformerLM } from '@sparsekit/models';

function pick(rng: Rng, n: number, count: number): number[] {
  const chosen = new Set<number>();
  while (chosen.size < Math.min(count, n)) chosen.add(rng.int(n));
  return [...chosen];
}

function scaleColumns(layer: Linear, columns: readonly number[], factor: number): void {
  const w = layer.getWeight().data.slice();
  const cols = layer.inFeatures;
  for (let r = 0; r < layer.outFeatures; r++) for (const c of columns) w[r * cols + c]! *= factor;
  layer.setWeight(new Tensor('f32', [layer.outFeatures, cols], w));
}

function scaleRows(layer: Linear, rows: readonly number[], factor: number): void {
  const w = layer.getWeight().data.slice();
  const cols = layer.inFeatures;
  for (const r of rows) {
    for (let c = 0; c < cols; c++) w[r * cols + c]! *= factor;
    if (layer.bias !== undefined) layer.bias[r]! *= factor;
  }
  layer.setWeight(new Tensor('f32', [layer.outFeatures, cols], w));
}

export interface OutlierOptions {
  /** Input channels made outliers per layer input (default 4). */
  channels?: number;
  /** How much larger those activations become (default 30). */
  scale?: number;
  seed?: number;
}

/** Plant outlier input channels in every block of a pre-norm Llama-style model, in place. */
export function plantOutlierChannels(model: TransformerLM, options: OutlierOptions = {}): void {
  const count = options.channels ?? 4;
  const scale = options.scale ?? 30;
  const rng = new Rng(options.seed ?? 99);
  const c = model.config;
  for (const b of model.params.blocks) {
    if (b.mlp.kind === 'moe')
      throw new InvalidArgumentError('MLP', 'moe', 'outlier planting needs dense or gated MLPs');
    const mlp = b.mlp;
    // Residual-stream channels after each norm.
    for (const [norm, readers] of [
      [b.attentionNorm, [b.q, b.k, b.v]],
      [b.mlpNorm, mlp.kind === 'gated' ? [mlp.gate, mlp.up] : [mlp.up]],
    ] as const) {
      const channels = pick(rng, norm.weight.length, count);
      for (const j of channels) norm.weight[j]! *= scale;
      for (const layer of readers) scaleColumns(layer, channels, 1 / scale);
    }
    // MLP channels: up_proj's rows scale the product silu(gate) * up linearly.
    const inner = pick(rng, mlp.down.inFeatures, count);
    scaleRows(mlp.up, inner, scale);
    scaleColumns(mlp.down, inner, 1 / scale);
    // Attention value channels: every query head of a KV group reads the same v row.
    const kvDims = pick(rng, c.numKvHeads * c.headDim, count);
    scaleRows(b.v, kvDims, scale);
    const group = c.numHeads / c.numKvHeads;
    const oColumns = kvDims.flatMap((j) => {
      const [kvHead, d] = [Math.floor(j / c.headDim), j % c.headDim];
      return Array.from({ length: group }, (_, g) => (kvHead * group + g) * c.headDim + d);
    });
    scaleColumns(b.o, oColumns, 1 / scale);
  }
}
