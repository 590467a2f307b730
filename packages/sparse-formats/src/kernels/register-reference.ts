import { linear, nmLinear, sddmm, spmm, spmv } from './reference.js';
import type { KernelRegistry } from './registry.js';

/** The op names of the sparse kernels. */
export const OPS = ['spmv', 'spmm', 'linear', 'nm-linear', 'sddmm'] as const;
export type OpName = (typeof OPS)[number];

/** Register the plain-TypeScript kernels under backend 'js'. */
export function registerReferenceKernels(registry: KernelRegistry): KernelRegistry {
  return registry
    .register('spmv', 'js', spmv)
    .register('spmm', 'js', spmm)
    .register('linear', 'js', linear)
    .register('nm-linear', 'js', nmLinear)
    .register('sddmm', 'js', sddmm);
}
