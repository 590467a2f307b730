// Terminal output: progress on stderr (a redrawn bar on a TTY, plain lines otherwise), results on
// stdout (text tables, or one JSON document with --json).
import type { ProgressEvent } from '@sparsekit/core';

export interface Io {
  stdout: NodeJS.WritableStream & { isTTY?: boolean };
  stderr: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
}

export class Ui {
  private barShown = false;
  private lastLine = '';
  private lastPlain = new Map<string, number>();

  constructor(
    readonly io: Io,
    readonly json: boolean,
  ) {}

  /** A line of human output on stdout (suppressed with --json, which prints only the result). */
  say(line = ''): void {
    if (this.json) return;
    this.clearBar();
    this.io.stdout.write(`${line}\n`);
  }

  /** A note on stderr (kept visible with --json). */
  note(line: string): void {
    this.clearBar();
    this.io.stderr.write(`${line}\n`);
  }

  result(value: unknown): void {
    if (this.json) this.io.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
  }

  /** A progress callback for the packages' `onProgress`. */
  progress(label?: string): (event: ProgressEvent) => void {
    return (event) => this.onProgress(event, label);
  }

  done(): void {
    this.clearBar();
  }

  private onProgress(e: ProgressEvent, label: string | undefined): void {
    const stage = label ?? e.stage;
    const count = e.total === undefined ? `${e.current}` : `${e.current}/${e.total}`;
    const what = `${stage}: ${count}${e.unit === undefined ? '' : ` ${e.current === 1 ? e.unit : plural(e.unit)}`}`;
    const detail = e.message === undefined ? '' : `  ${e.message}`;
    if (this.io.stderr.isTTY === true) {
      const width = 24;
      const bar =
        e.total === undefined || e.total === 0
          ? ''
          : `[${'#'.repeat(Math.round((width * e.current) / e.total)).padEnd(width, '.')}] `;
      const line = `${bar}${what}${detail}`.slice(0, (this.io.stderr.columns ?? 100) - 1);
      this.io.stderr.write(`\r${line.padEnd(this.lastLine.length)}`);
      this.lastLine = line;
      this.barShown = true;
      return;
    }
    // Plain lines: every unit when there are few, else every 10%, and the last one.
    const total = e.total ?? 0;
    const step = total > 20 ? Math.ceil(total / 10) : 1;
    const last = this.lastPlain.get(stage) ?? -1;
    if (e.current === total || e.current - last >= step || e.current < last) {
      this.io.stderr.write(`${what}${detail}\n`);
      this.lastPlain.set(stage, e.current);
    }
  }

  private clearBar(): void {
    if (!this.barShown) return;
    this.io.stderr.write(`\r${' '.repeat(this.lastLine.length)}\r`);
    this.barShown = false;
    this.lastLine = '';
  }
}

/** A left-aligned first column and right-aligned others. */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const fmt = (r: readonly string[]) =>
    r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [fmt(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(fmt)].join('\n');
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(2)} MiB`;
  if (n < 1024 ** 4) return `${(n / 1024 ** 3).toFixed(2)} GiB`;
  return `${(n / 1024 ** 4).toFixed(2)} TiB`;
}

/** "layer" -> "layers", "batch" -> "batches". */
function plural(unit: string): string {
  return /(s|sh|ch|x|z)$/.test(unit) ? `${unit}es` : `${unit}s`;
}
