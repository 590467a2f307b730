export { loadSparseSafetensors, saveSparseSafetensors } from './io/node.js';
