import { backendConformance } from '@sparsekit/test-utils';
import { afterAll } from 'vitest';
import { GpuBackend } from './backend.js';
import { NoGpuAdapterError } from './gpu.js';
import { GpuJsBackend } from './gpujs.js';

// The one conformance suite of the backend contract, on both GPU backends: WebGPU on whatever
// adapter exists (CI: Mesa lavapipe), gpu.js in its cpu mode (the kernels it would compile to GLSL).
const webgpu = await GpuBackend.create().catch((error: unknown) => {
  if (!(error instanceof NoGpuAdapterError)) throw error;
  return error;
});
const gpujs = await GpuJsBackend.create({ mode: 'cpu' });
afterAll(() => {
  if (webgpu instanceof GpuBackend) webgpu.dispose();
  gpujs.dispose();
});

backendConformance('webgpu', () => webgpu as GpuBackend, {
  skip: webgpu instanceof GpuBackend ? false : `no WebGPU adapter (${(webgpu as Error).message})`,
  tolerance: 1e-4,
  unsupported: ['sddmm'],
});
backendConformance('gpu.js (cpu mode)', () => gpujs, { unsupported: ['sddmm', 'gatherGemv'] });
