// Sweeps over methods x targets whose results survive a crash: one JSON line per finished point.
import { closeSync, existsSync, fsyncSync, openSync, readFileSync, truncateSync, writeSync } from 'node:fs';
import { InvalidArgumentError, InvalidFormatError, IOError } from '@sparsekit/core';

/** One point of a sweep: a unique key (e.g. "wanda 2:4") and what the run needs. */
export interface SweepPoint<P> {
  key: string;
  params: P;
}

export interface SweepOptions<P, R> {
  points: readonly SweepPoint<P>[];
  /** Measure one point. */
  run: (params: P, point: SweepPoint<P>) => Promise<R>;
  /** The JSONL file results are appended to (one line per finished point, fsynced). */
  file: string;
  /**
   * Keep the results already in `file` and run only the points missing from it (default false:
   * start over). The file's first line records `settings`; resuming with other settings is refused.
   */
  resume?: boolean;
  /** What the results depend on besides the points (model, windows, ...): JSON-comparable. */
  settings?: unknown;
  /** Told before each point that runs, and for each point taken from the file. */
  onPoint?: (event: { key: string; index: number; total: number; resumed: boolean }) => void;
}

export interface SweepResult<P, R> {
  /** Every point's result, in the order of `points`. */
  rows: Array<{ key: string; params: P; result: R }>;
  /** Keys taken from the file rather than run. */
  resumed: string[];
}

/**
 * Run every point of a sweep, appending each result to a JSONL file as it finishes, so that a crash
 * (or Ctrl-C, or kill -9) loses at most the point being measured: rerun with `resume: true` and the
 * points already in the file are skipped. A line cut short by a crash is dropped on resume.
 */
export async function runSweep<P, R>(options: SweepOptions<P, R>): Promise<SweepResult<P, R>> {
  const keys = new Set<string>();
  for (const p of options.points) {
    if (keys.has(p.key)) throw new InvalidArgumentError('points', p.key, 'every point needs its own key');
    keys.add(p.key);
  }
  const settings = JSON.stringify(options.settings ?? null);
  const done = new Map<string, R>();
  if (options.resume === true && existsSync(options.file)) {
    const { header, results, goodBytes } = readSweepFile<R>(options.file);
    if (header !== undefined && JSON.stringify(header.settings) !== settings)
      throw new InvalidArgumentError(
        'resume',
        true,
        `${options.file} holds a sweep with other settings (${JSON.stringify(header.settings)}); start over without resume, or use another file`,
      );
    for (const [key, result] of results) if (keys.has(key)) done.set(key, result);
    truncateSync(options.file, goodBytes); // drop a torn last line
  }
  const fd = open(options.file, options.resume === true && done.size > 0 ? 'a' : 'w');
  try {
    if (done.size === 0) append(fd, options.file, { sweep: 1, settings: options.settings ?? null });
    const rows: SweepResult<P, R>['rows'] = [];
    const resumed: string[] = [];
    for (const [index, point] of options.points.entries()) {
      const prior = done.get(point.key);
      options.onPoint?.({
        key: point.key,
        index,
        total: options.points.length,
        resumed: prior !== undefined,
      });
      if (prior !== undefined) {
        rows.push({ key: point.key, params: point.params, result: prior });
        resumed.push(point.key);
        continue;
      }
      const result = await options.run(point.params, point);
      append(fd, options.file, { key: point.key, result });
      rows.push({ key: point.key, params: point.params, result });
    }
    return { rows, resumed };
  } finally {
    closeSync(fd);
  }
}

/** The header and the complete result lines of a sweep file, and how many bytes they span. */
export function readSweepFile<R>(file: string): {
  header: { settings: unknown } | undefined;
  results: Map<string, R>;
  goodBytes: number;
} {
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (error) {
    throw new IOError(file, 'Could not read the sweep file', error);
  }
  const results = new Map<string, R>();
  let header: { settings: unknown } | undefined;
  let offset = 0;
  let line = 0;
  while (offset < bytes.length) {
    const end = bytes.indexOf(0x0a, offset);
    if (end < 0) break; // no newline: a line cut short by a crash
    const text = bytes.subarray(offset, end).toString('utf8');
    line++;
    let value: { sweep?: number; settings?: unknown; key?: unknown; result?: R };
    try {
      value = JSON.parse(text);
    } catch {
      throw new InvalidFormatError('sweep file', `line ${line} of ${file} is not JSON`);
    }
    if (line === 1 && value.sweep === 1) header = { settings: value.settings };
    else if (typeof value.key === 'string' && 'result' in value) results.set(value.key, value.result as R);
    else throw new InvalidFormatError('sweep file', `line ${line} of ${file} is not a sweep result`);
    offset = end + 1;
  }
  return { header, results, goodBytes: offset };
}

function open(file: string, flags: 'a' | 'w'): number {
  try {
    return openSync(file, flags, 0o666);
  } catch (error) {
    throw new IOError(file, 'Could not open the sweep file', error);
  }
}

function append(fd: number, file: string, value: unknown): void {
  try {
    writeSync(fd, `${JSON.stringify(value)}\n`);
    fsyncSync(fd);
  } catch (error) {
    throw new IOError(file, 'Could not append to the sweep file', error);
  }
}

/** Every combination of the given values, keyed "a b c" (e.g. methods x targets). */
export function sweepGrid<T extends Record<string, readonly unknown[]>>(
  axes: T,
  key: (params: { [K in keyof T]: T[K][number] }) => string,
): SweepPoint<{ [K in keyof T]: T[K][number] }>[] {
  let combos: Array<Record<string, unknown>> = [{}];
  for (const [name, values] of Object.entries(axes))
    combos = combos.flatMap((c) => values.map((v) => ({ ...c, [name]: v })));
  return combos.map((c) => {
    const params = c as { [K in keyof T]: T[K][number] };
    return { key: key(params), params };
  });
}
