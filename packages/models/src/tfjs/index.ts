export { LlamaTwin, type TwinLayer, type TwinWeights } from './llama-twin.js';
