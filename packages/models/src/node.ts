export { type LoadedModel, type LoadOptions, loadHfModel } from './hf/load.js';
export { type SaveDType, type SaveLayout, type SaveOptions, saveModel } from './hf/save.js';
export { tinyLmMoePath, tinyLmPath } from './hf/tiny-lm.js';
