import type * as TF from '@tensorflow/tfjs-core';

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
