// PERP (Zimmer et al., "PERP: Rethinking the Prune-Retrain Paradigm in the Era of LLMs"): after
// one-shot pruning, retrain only the normalisation layers and the biases. Everything else stays
// frozen, so the pruned weights stay zero without a mask, and retraining touches a tiny share of the
// parameters.
import type * as tfl from '@tensorflow/tfjs-layers';

const NORMS = new Set(['BatchNormalization', 'LayerNormalization']);

/**
 * Freeze every weight of `model` except the normalisation layers' and the biases (a weight named
 * `.../bias`), so that `model.compile(...)` then `fit` retrain only those (compile after calling
 * this: tfjs collects the trainable weights at compile time). Returns the weights left trainable.
 */
export function perpTrainable(model: tfl.LayersModel): string[] {
  const left: string[] = [];
  const visit = (layer: tfl.layers.Layer) => {
    const inner = (layer as unknown as { layer?: tfl.layers.Layer }).layer;
    if (inner !== undefined && layer.getClassName() === 'PruneLowMagnitude') return visit(inner);
    const norm = NORMS.has(layer.getClassName());
    for (const w of layer.weights) {
      const keep = norm || /(^|\/)bias(_\d+)?$/.test(w.originalName);
      if (!w.trainable && !keep) continue;
      w.trainable = keep;
      if (keep) left.push(w.name);
    }
  };
  for (const layer of model.layers) visit(layer);
  return left;
}
