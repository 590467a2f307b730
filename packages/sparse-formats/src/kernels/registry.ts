import { KernelNotFoundError } from '@sparsekit/core';

/**
 * An explicit kernel registry: (op, backend) -> function. Nothing registers itself on import; each
 * backend exposes a `register...` function that the caller (or `defaultRegistry`) invokes.
 * `get(op)` picks the first backend in `preference` that has the op.
 */
export class KernelRegistry {
  private readonly kernels = new Map<string, Map<string, unknown>>();
  preference: string[];

  constructor(preference: string[] = ['js']) {
    this.preference = preference;
  }

  register<F>(op: string, backend: string, fn: F): this {
    let byBackend = this.kernels.get(op);
    if (byBackend === undefined) {
      byBackend = new Map();
      this.kernels.set(op, byBackend);
    }
    byBackend.set(backend, fn);
    return this;
  }

  has(op: string, backend?: string): boolean {
    const byBackend = this.kernels.get(op);
    return byBackend !== undefined && (backend === undefined ? byBackend.size > 0 : byBackend.has(backend));
  }

  backends(op: string): string[] {
    return [...(this.kernels.get(op)?.keys() ?? [])];
  }

  /** The kernel for `op` on `backend`, or on the most preferred backend that has it. */
  get<F>(op: string, backend?: string): F {
    const byBackend = this.kernels.get(op);
    if (backend !== undefined) {
      const fn = byBackend?.get(backend);
      if (fn === undefined) throw new KernelNotFoundError(op, backend, this.backends(op));
      return fn as F;
    }
    for (const name of this.preference) {
      const fn = byBackend?.get(name);
      if (fn !== undefined) return fn as F;
    }
    throw new KernelNotFoundError(op, this.preference.join('|'), this.backends(op));
  }
}
