export { loadSparseSafetensors, SparseSafetensorsFile, saveSparseSafetensors } from './io/node.js';
export { type SparseModelFilesOptions, sparseModelFiles } from './io/tfjs-files.js';
