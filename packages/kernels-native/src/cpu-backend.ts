// The CPU backend to use in Node: native where the addon loads, else wasm, else the reference
// kernels; with one line saying why a faster one was passed over.
import { InvalidArgumentError } from '@sparsekit/core';
import { type Backend, createWasmBackend, referenceBackend } from '@sparsekit/sparse-formats';
import { nativeAvailability } from './load.js';
import { createNativeBackend } from './native-backend.js';

export const CPU_BACKENDS = ['auto', 'native', 'wasm', 'reference'] as const;
export type CpuBackendRequest = (typeof CPU_BACKENDS)[number];

/** A synchronous CPU backend with its thread count, to be disposed when done. */
export interface CpuBackend extends Backend {
  readonly threads: number;
  dispose(): Promise<void>;
}

export interface CpuBackendOptions {
  /** 'auto' (default): native, else wasm, else reference. A named backend is used or fails. */
  backend?: CpuBackendRequest;
  /** Threads for native and wasm (default: the machine's cores, native at most 16). */
  threads?: number;
}

export interface CpuBackendChoice {
  backend: CpuBackend;
  /** Set when 'auto' passed over a faster backend: one line saying which and why. */
  fallback?: string;
}

/**
 * Open the CPU backend: with 'auto', the native kernels where the addon loads here, else wasm, else
 * the reference kernels. A backend asked for by name that cannot start throws its typed error
 * (NativeUnavailableError for native).
 */
export async function createCpuBackend(options: CpuBackendOptions = {}): Promise<CpuBackendChoice> {
  const request = options.backend ?? 'auto';
  if (!(CPU_BACKENDS as readonly string[]).includes(request))
    throw new InvalidArgumentError('backend', request, `must be one of ${CPU_BACKENDS.join(', ')}`);
  const threads = options.threads;
  const opts = threads === undefined ? {} : { threads };
  if (request === 'native') return { backend: createNativeBackend(opts) };
  if (request === 'wasm') return { backend: await createWasmBackend(opts) };
  if (request === 'reference') return { backend: referenceCpuBackend() };
  const native = nativeAvailability();
  if (native.available) return { backend: createNativeBackend(opts) };
  try {
    return {
      backend: await createWasmBackend(opts),
      fallback: `native kernels unavailable (${native.reason}): using wasm`,
    };
  } catch (error) {
    const why = error instanceof Error ? error.message.split('\n')[0] : String(error);
    return {
      backend: referenceCpuBackend(),
      fallback: `native kernels unavailable (${native.reason}) and wasm failed to start (${why}): using the reference kernels`,
    };
  }
}

function referenceCpuBackend(): CpuBackend {
  return Object.assign(Object.create(referenceBackend) as Backend, {
    threads: 1,
    dispose: async () => {},
  }) as CpuBackend;
}
