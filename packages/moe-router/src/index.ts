export {
  blockffnBalanceLoss,
  chunkSparsificationLoss,
  type LocalityOptions,
  localityLoss,
  scaledScores,
} from './blockffn-losses.js';
export {
  type Capacity,
  type CapacityConvention,
  type CapacityFactor,
  type CapacityShape,
  checkCapacity,
  type Dropped,
  dropOverCapacity,
  expertCapacity,
  neededCapacity,
} from './capacity.js';
export {
  type CometGateOutput,
  type CometOptions,
  type CometParams,
  CometRouter,
  cometEntropy,
  cometRouter,
  smoothStep,
} from './comet.js';
export {
  combineRows,
  dispatch,
  type GroupedDispatch,
  gatherRows,
  type PaddedDispatch,
  paddedDispatch,
} from './dispatch.js';
export {
  type ExpertChoiceOptions,
  ExpertChoiceRouter,
  type ExpertChoiceRouterOptions,
  expertChoice,
  routeExpertChoice,
} from './expert-choice.js';
export { type GateLogits, type GateOptions, gateLogits, type RouterNoise } from './gate-logits.js';
export { type HashKey, HashRouter, type HashRouterOptions, hashExpert, hashRouter } from './hash.js';
export {
  type BalanceForm,
  type BalanceOptions,
  concatenatedBalancingLoss,
  loadBalancingLoss,
  meanOverLayers,
  routerZLoss,
} from './losses.js';
export { type ExpertSparsity, expertSparsity, type LoadMetrics, loadMetrics } from './metrics.js';
export {
  concatRouteResults,
  type LayerRoutings,
  type ModelRecording,
  type MoeLayer,
  type MoeModelLike,
  type MoeSlotLike,
  moeLayers,
  recordModelRoutings,
  routeResultOf,
  swapRouters,
  withRouters,
} from './model-routers.js';
export {
  type ExpertParallelCost,
  type ExpertParallelOptions,
  expertParallelCost,
  gatedExpertFlops,
  type Spread,
  spread,
} from './parallel/cost-model.js';
export { addExpertRow, checkExperts, type GatedExpert, runExpertsLocally } from './parallel/experts.js';
export {
  type ExpertPlacement,
  type ExpertPlacementKind,
  placeExperts,
  shardTokens,
} from './parallel/placement.js';
export {
  ExpertParallelSimulation,
  type SimulationOptions,
  type SimulationRun,
  simulateExpertParallel,
} from './parallel/simulation.js';
export { type RecordingRouter, type RoutingRecord, recordRoutings } from './record.js';
export {
  type ReluRmsOptions,
  ReluRmsRouter,
  type ReluRmsRouterOptions,
  reluRms,
  routeReluRms,
} from './relu-rms.js';
export type { RouteResult } from './route-result.js';
export {
  ROUTERS,
  type RouterEntry,
  type RouterName,
  type RouterSettings,
  type RoutingRouter,
} from './router-table.js';
export { logsumexpRows, softmaxRows, topIndices } from './softmax.js';
export {
  applyStun,
  EXPERT_LAYERS,
  expertWeightCounts,
  type StunLayerPlan,
  type StunOptions,
  type StunPlan,
  type StunStep,
  stunPlan,
} from './stun.js';
export {
  type Normalize,
  routeTopK,
  SoftmaxTopKRouter,
  type SwitchRouterOptions,
  softmaxTopK,
  switchRouter,
  type TopKOptions,
  type TopKRouterOptions,
} from './top-k.js';
