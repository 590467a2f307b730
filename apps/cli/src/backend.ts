// The CPU backend of a command: --backend auto (native, else wasm, else reference) or a named one;
// a fallback is said in one line on stderr.
import {
  CPU_BACKENDS,
  type CpuBackend,
  type CpuBackendRequest,
  createCpuBackend,
} from '@sparsekit/kernels-native';

export type { CpuBackend };

import { type Flags, stringFlag, UsageError } from './args.js';
import type { Ui } from './ui.js';

/** The flag's spec, for a command's `flags`. */
export const BACKEND_FLAG = { backend: { type: 'string' } } as const;

/** The flag's line for a command's --help. */
export const BACKEND_HELP =
  '  --backend B            CPU kernels: auto (native, else wasm), native, wasm or reference (default auto)';

/** Open the backend the flags ask for (threads: the command's own choice, or the backend's default). */
export async function openBackend(
  command: string,
  flags: Flags,
  ui: Ui,
  threads?: number,
): Promise<CpuBackend> {
  const raw = stringFlag(flags, 'backend') ?? 'auto';
  if (!(CPU_BACKENDS as readonly string[]).includes(raw))
    throw new UsageError(`--backend must be one of ${CPU_BACKENDS.join(', ')}, not "${raw}"`, command);
  const choice = await createCpuBackend({
    backend: raw as CpuBackendRequest,
    ...(threads === undefined ? {} : { threads }),
  });
  if (choice.fallback !== undefined) ui.note(choice.fallback);
  return choice.backend;
}
