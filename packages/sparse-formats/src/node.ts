export { loadSparseSafetensors, SparseSafetensorsFile, saveSparseSafetensors } from './io/node.js';
