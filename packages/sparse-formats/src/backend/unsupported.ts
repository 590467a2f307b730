import { UnsupportedOpError } from '@sparsekit/core';
import type { BackendOp } from './contract.js';

/** Throw the typed error for an operation `backend` does not implement (optionally naming one that does). */
export function unsupported(backend: string, op: BackendOp, hint?: string): never {
  throw new UnsupportedOpError(op, backend, hint);
}
