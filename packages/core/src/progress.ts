/**
 * Progress of long work (pruning layer by layer, evaluating batches, training steps). Producers call
 * `onProgress` with events; consumers (the CLI's bars, the server's job log) render them.
 */
export interface ProgressEvent {
  /** What is running, e.g. 'prune', 'calibrate', 'eval'. */
  readonly stage: string;
  /** Units done so far, 0..total. */
  readonly current: number;
  /** Units in all, when known. */
  readonly total?: number;
  /** What a unit is: 'layer', 'batch', 'token', 'step'. */
  readonly unit?: string;
  /** A short human-readable detail, e.g. the layer name. */
  readonly message?: string;
}

export type ProgressCallback = (event: ProgressEvent) => void;

/** Options accepted by every long-running operation. */
export interface ProgressOptions {
  onProgress?: ProgressCallback;
  /** Aborts the work between units; the operation then throws the signal's reason. */
  signal?: AbortSignal;
}

/** Report progress if a callback was given, and stop if the signal was aborted. */
export function reportProgress(options: ProgressOptions | undefined, event: ProgressEvent): void {
  options?.signal?.throwIfAborted();
  options?.onProgress?.(event);
}
