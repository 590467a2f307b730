export { type AllcloseOptions, type AllcloseReport, allclose } from './allclose.js';
export { backendConformance, type ConformanceBackend, pairwiseAttention } from './backend-conformance.js';
export { describeInChromium, findChromium, noWebGpuAdapter, type PageServer, servePage } from './browser.js';
export { denseMatmul, randomOrthonormal, transposeDense } from './dense.js';
export { fixturePath, readFixture } from './fixtures.js';
export { bytesReadByProcess } from './process-io.js';
export { safetensorsWithHole } from './safetensors-hole.js';
