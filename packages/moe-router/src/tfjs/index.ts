// @sparsekit/moe-router/tfjs: the routers as trainable gates of a tfjs model (tfjs is an optional peer).
export {
  type TrainableGate,
  type TrainableGateInput,
  type TrainableGateOutput,
  type TrainableGateSettings,
  trainableGate,
} from './gates.js';
