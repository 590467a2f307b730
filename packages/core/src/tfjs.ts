import type * as TF from '@tensorflow/tfjs-core';
import { registerWasmGradientKernels } from './tfjs-wasm-kernels.js';

export type TfjsBackendName = 'tensorflow' | 'wasm' | 'cpu';

export interface LoadedTfjs {
  tf: typeof TF;
  /** The backend in use: 'tensorflow' (tfjs-node or tfjs-node-gpu), 'wasm' or 'cpu'. */
  backend: TfjsBackendName;
}

let loaded: Promise<LoadedTfjs> | undefined;

async function tryImport(name: string): Promise<boolean> {
  try {
    await import(name);
    return true;
  } catch {
    return false;
  }
}

/**
 * TensorFlow.js (`@tensorflow/tfjs`, for its gradients) with the best backend installed, chosen once per process:
 * @tensorflow/tfjs-node-gpu, else @tensorflow/tfjs-node, else @tensorflow/tfjs-backend-wasm, else
 * @tensorflow/tfjs-backend-cpu. All are optional peers (tfjs-node's install downloads libtensorflow,
 * so it is never required). `prefer` forces a backend among those installed.
 */
export function loadTfjs(prefer?: TfjsBackendName): Promise<LoadedTfjs> {
  loaded ??= (async () => {
    const tf = (await import('@tensorflow/tfjs-core')) as typeof TF;
    // Gradients: @tensorflow/tfjs registers them all on import (its Node bundle); under a bundler,
    // tfjs-core's own ES module does too.
    if (!(await tryImport('@tensorflow/tfjs')))
      await tryImport('@tensorflow/tfjs-core/dist/register_all_gradients');
    if (tf.getGradient('Abs') === undefined) {
      throw new Error('TensorFlow.js gradients are not registered: install @tensorflow/tfjs.');
    }
    const candidates: Array<[TfjsBackendName, string[]]> = [
      ['tensorflow', ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node']],
      ['wasm', ['@tensorflow/tfjs-backend-wasm']],
      ['cpu', ['@tensorflow/tfjs-backend-cpu']],
    ];
    const order =
      prefer === undefined ? candidates : [...candidates.filter(([n]) => n === prefer), ...candidates];
    for (const [backend, packages] of order) {
      for (const name of packages) {
        if (!(await tryImport(name))) continue;
        if (await tf.setBackend(backend)) {
          await tf.ready();
          if (backend === 'wasm') registerWasmGradientKernels(tf);
          return { tf, backend };
        }
      }
    }
    throw new Error(
      'No TensorFlow.js backend is installed: add @tensorflow/tfjs-backend-wasm (or tfjs-node, tfjs-backend-cpu).',
    );
  })();
  return loaded;
}

export interface MatMulOps {
  /** matMul of 2-D tensors, its gradients from explicit transposes. */
  mm: (a: TF.Tensor, b: TF.Tensor) => TF.Tensor;
  /** matMul of 4-D tensors over their last two axes (attention), likewise. */
  bmm: (a: TF.Tensor, b: TF.Tensor) => TF.Tensor;
}

const matMulCache = new WeakMap<object, MatMulOps>();

/**
 * matMul with gradients computed from explicit `transpose()` copies and plain matMuls. tfjs's own
 * matMul gradient uses the transposeA/transposeB flags, which tfjs-backend-wasm runs ~10-20x slower
 * than a transpose followed by a plain matMul (measured: [512,128]^T x [512,512] 80 ms, the plain
 * product 4 ms), so every tfjs training loop in Sparsekit multiplies through these.
 */
export function matMulOps(tf: typeof TF): MatMulOps {
  const cached = matMulCache.get(tf);
  if (cached !== undefined) return cached;
  const withGradient = (swap: (t: TF.Tensor) => TF.Tensor) =>
    tf.customGrad((...args: (TF.Tensor | TF.GradSaveFunc)[]) => {
      const [a, b, save] = args as [TF.Tensor, TF.Tensor, TF.GradSaveFunc];
      save([a, b]);
      return {
        value: tf.matMul(a as TF.Tensor3D, b as TF.Tensor3D),
        gradFunc: (dy, saved) => [
          tf.matMul(dy as TF.Tensor3D, swap(saved[1]!) as TF.Tensor3D),
          tf.matMul(swap(saved[0]!) as TF.Tensor3D, dy as TF.Tensor3D),
        ],
      };
    }) as (a: TF.Tensor, b: TF.Tensor) => TF.Tensor;
  const ops: MatMulOps = {
    mm: withGradient((t) => tf.transpose(t)),
    bmm: withGradient((t) => tf.transpose(t, [0, 1, 3, 2])),
  };
  matMulCache.set(tf, ops);
  return ops;
}
