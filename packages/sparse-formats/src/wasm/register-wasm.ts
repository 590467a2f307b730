import type { KernelRegistry } from '../kernels/registry.js';
import type { WasmBackend } from './backend.js';

/** Register the wasm kernels of `backend` under 'wasm' and prefer them over the plain-TypeScript ones. */
export function registerWasmKernels(registry: KernelRegistry, backend: WasmBackend): KernelRegistry {
  registry
    .register('linear', 'wasm', backend.linear.bind(backend))
    .register('spmv', 'wasm', backend.spmv.bind(backend))
    .register('spmm', 'wasm', backend.spmm.bind(backend));
  registry.preference = ['wasm', ...registry.preference.filter((b) => b !== 'wasm')];
  return registry;
}
