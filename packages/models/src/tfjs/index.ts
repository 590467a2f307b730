export {
  LlamaTwin,
  type TwinGatedLayer,
  type TwinLayer,
  type TwinMoeLayer,
  type TwinWeights,
} from './llama-twin.js';
export { expertLoad, loadBalancingLoss, routerZLoss } from './moe-losses.js';
export { type TwinExpert, type TwinGate, type TwinMoe, type TwinRouting, topKMask } from './moe-mlp.js';
export type { TwinLossOptions, TwinLossTerms } from './twin-loss.js';
