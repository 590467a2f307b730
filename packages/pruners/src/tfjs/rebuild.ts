// A tfjs-layers model rebuilt with some of its layers replaced (Keras' `clone_model` with a clone
// function, which tfjs lacks): Sequential models stay Sequential; functional models are re-applied
// node by node in depth order; nested models are rebuilt recursively. Layers that are not replaced
// are the same objects, so their weights are shared with the original.
import { InvalidArgumentError } from '@sparsekit/core';
import * as tfl from '@tensorflow/tfjs-layers';

type Layer = tfl.layers.Layer;
type SymbolicTensor = tfl.SymbolicTensor;

export function rebuildModel(model: tfl.LayersModel, replace: (layer: Layer) => Layer): tfl.LayersModel {
  const map = (layer: Layer): Layer =>
    layer instanceof tfl.LayersModel ? rebuildModel(layer, replace) : replace(layer);
  if (model instanceof tfl.Sequential) {
    const out = tfl.sequential({ name: model.name });
    const explicitInput = model.layers[0]?.getClassName() === 'InputLayer';
    const layers = model.layers.filter((l) => l.getClassName() !== 'InputLayer').map(map);
    const first = layers[0] as { batchInputShape?: unknown } | undefined;
    if (explicitInput || first?.batchInputShape === undefined)
      out.add(
        tfl.layers.inputLayer({ batchInputShape: model.inputs[0]!.shape, dtype: model.inputs[0]!.dtype }),
      );
    for (const layer of layers) out.add(layer);
    return out;
  }
  // Functional: every node of this model, deepest (the inputs) first.
  const produced = new Map<string, SymbolicTensor[]>(); // node key -> its new output tensors
  const key = (layer: Layer, nodeIndex: number) => `${layer.name}#${nodeIndex}`;
  const mapped = new Map<Layer, Layer>();
  const inputs: SymbolicTensor[] = [];
  for (const inputLayer of model.inputLayers) {
    const old = inputLayer.inboundNodes[0]!.outputTensors[0]!;
    const t = tfl.input({ batchShape: old.shape, dtype: old.dtype, name: inputLayer.name });
    produced.set(key(inputLayer, 0), [t]);
    inputs.push(t);
  }
  const depths = Object.keys(model.nodesByDepth)
    .map(Number)
    .sort((a, b) => b - a);
  for (const depth of depths) {
    for (const node of model.nodesByDepth[depth]!) {
      const layer = node.outboundLayer;
      if (layer instanceof tfl.layers.Layer && layer.getClassName() === 'InputLayer') continue;
      const nodeIndex = layer.inboundNodes.indexOf(node);
      const args = node.inboundLayers.map((from, i) => {
        const source = produced.get(key(from, node.nodeIndices[i]!));
        if (source === undefined)
          throw new InvalidArgumentError(
            'model',
            model.name,
            `node of ${layer.name} is fed by an unknown node`,
          );
        return source[node.tensorIndices[i]!]!;
      });
      let target = mapped.get(layer);
      if (target === undefined) {
        target = map(layer);
        mapped.set(layer, target);
      }
      const out = target.apply(args.length === 1 ? args[0]! : args, node.callArgs) as
        | SymbolicTensor
        | SymbolicTensor[];
      produced.set(key(layer, nodeIndex), Array.isArray(out) ? out : [out]);
    }
  }
  const outputs = model.outputLayers.map((layer, i) => {
    const t = produced.get(key(layer, model.outputLayersNodeIndices[i]!));
    if (t === undefined)
      throw new InvalidArgumentError('model', model.name, `output ${layer.name} was not rebuilt`);
    return t[model.outputLayersTensorIndices[i]!]!;
  });
  return tfl.model({ inputs, outputs, name: model.name });
}
