// A forward pass is written once, as a generator that yields the backend operations it needs; a
// synchronous driver runs it on a `Backend`, an asynchronous one awaits each operation of an
// `AsyncBackend` (WebGPU). Everything between operations (norms, activations, hooks) is plain code.
import { InvalidArgumentError } from '@sparsekit/core';
import {
  type AnyBackend,
  type AttentionArgs,
  type Backend,
  type GatherGemvArgs,
  type LinearOptions,
  referenceBackend,
  type SparseMatrix,
} from '@sparsekit/sparse-formats';

/** One backend operation of a forward pass. */
export type Step =
  | { op: 'linear'; x: Float32Array; batch: number; w: SparseMatrix; options?: LinearOptions }
  | { op: 'attention'; args: AttentionArgs }
  | { op: 'gatherGemv'; args: GatherGemvArgs };

/** A computation that yields steps and returns `T`. */
export type Steps<T> = Generator<Step, T, Float32Array>;

/**
 * Decode on sparse inputs: a one-token product whose input has at least `minZeroShare` exact zeros
 * runs as a column-gather GEMV, which reads only the weight columns of the nonzero inputs.
 */
export interface SparseDecode {
  /** Share of exact zeros in a one-token input from which the gather path is taken, in [0, 1]. */
  minZeroShare: number;
  /**
   * Gated MLPs: the channels to compute for one token's MLP input (a Deja Vu predictor's choice), or
   * undefined for all. Only those rows of gate and up are computed; the others are 0.
   */
  mlpRows?: (block: number, input: Float32Array) => Int32Array | undefined;
}

/** The backend a model and its layers share; replacing `current` switches all of them. */
export interface BackendRef {
  current: AnyBackend;
  /** When set, one-token products on sparse inputs skip the zero inputs' columns (see `SparseDecode`). */
  sparseDecode?: SparseDecode;
}

export function backendRef(backend: AnyBackend = referenceBackend): BackendRef {
  return { current: backend };
}

/** `backend` as a synchronous backend, or a typed error saying to use the async methods. */
export function syncBackend(backend: AnyBackend, caller: string): Backend {
  if (backend.flavour !== 'sync') {
    throw new InvalidArgumentError(
      'backend',
      backend.name,
      `is asynchronous, so ${caller} cannot run on it: use the async methods (forwardAsync, logitsAsync, generateAsync)`,
    );
  }
  return backend;
}

function execute(backend: AnyBackend, step: Step): Float32Array | Promise<Float32Array> {
  if (step.op === 'linear') return backend.linear(step.x, step.batch, step.w, step.options);
  return step.op === 'attention' ? backend.attention(step.args) : backend.gatherGemv(step.args);
}

/** Run `steps` to completion on a synchronous backend. */
export function runSync<T>(backend: AnyBackend, steps: Steps<T>, caller: string): T {
  const b = syncBackend(backend, caller);
  let r = steps.next();
  while (r.done !== true) r = steps.next(execute(b, r.value) as Float32Array);
  return r.value;
}

/** Run `steps` to completion on any backend, awaiting each operation. */
export async function runAsync<T>(backend: AnyBackend, steps: Steps<T>): Promise<T> {
  let r = steps.next();
  while (r.done !== true) r = steps.next(await execute(backend, r.value));
  return r.value;
}
