// @sparsekit/sae/tfjs: training sparse autoencoders on TensorFlow.js (an optional peer).
export {
  type TrainedSae,
  type TrainLogEntry,
  type TrainSaeOptions,
  trainSae,
  zipfDeficits,
} from './train.js';
