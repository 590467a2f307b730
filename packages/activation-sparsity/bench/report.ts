// Ratios, the target check and the printed table of the gather-GEMV benchmark.

export interface Row {
  /** W [rows, cols] = [out, in]. */
  shape: string;
  kernel: string;
  dtype: 'f32' | 'f16';
  dense: boolean;
  /** Requested activation sparsity (share of x entries that are zero); 0 for the dense baselines. */
  sparsity: number;
  /** Counted from the active set: 1 - active / cols. */
  measuredSparsity: number;
  active: number;
  threads: number;
  bytesRead: number;
  copies: number;
  reps: number;
  coldMs: number;
  warmMs: number;
  gbs: number;
  /** The fastest dense baseline's cold time (same shape) / this cold time. */
  vsFastestDense: number;
  /** Our dense kernel of the same value type, cold time / this cold time. */
  vsSameDtype: number;
}

/** Fill `vsFastestDense` and `vsSameDtype` within each shape. */
export function addRatios(rows: Row[]): void {
  for (const r of rows) {
    const peers = rows.filter((p) => p.shape === r.shape && p.dense);
    const fastest = Math.min(...peers.map((p) => p.coldMs));
    r.vsFastestDense = peers.length === 0 ? Number.NaN : fastest / r.coldMs;
    const same = peers.find((p) => p.kernel === `wasm dense linear ${r.dtype}`);
    r.vsSameDtype = same === undefined ? Number.NaN : same.coldMs / r.coldMs;
  }
}

export interface TargetCheck {
  target: string;
  measured: string;
  met: boolean;
}

const GOALS: Array<[number, number]> = [
  [0.5, 1.9],
  [0.9, 6],
];

/** Gather at 50% >= 1.9x and at 90% >= 6x the fastest dense baseline, per shape and value type. */
export function checkTargets(rows: Row[]): TargetCheck[] {
  const checks: TargetCheck[] = [];
  for (const r of rows) {
    const goal = GOALS.find(([s]) => !r.dense && Math.abs(s - r.sparsity) < 1e-9);
    if (goal === undefined) continue;
    checks.push({
      target: `${r.shape} ${r.kernel} at ${Math.round(100 * r.sparsity)}% >= ${goal[1]}x the fastest dense`,
      measured: `${r.vsFastestDense.toFixed(2)}x`,
      met: r.vsFastestDense >= goal[1],
    });
  }
  return checks;
}

const HEADER = [
  'kernel',
  'sparsity',
  'active',
  'MB read',
  'copies',
  'cold ms',
  'warm ms',
  'GB/s',
  'vs fastest dense',
  'vs same dtype',
];

function cells(r: Row): string[] {
  return [
    r.kernel,
    r.dense ? '-' : `${(100 * r.measuredSparsity).toFixed(1)}%`,
    String(r.active),
    (r.bytesRead / 1e6).toFixed(1),
    String(r.copies),
    r.coldMs.toFixed(3),
    r.warmMs.toFixed(3),
    r.gbs.toFixed(1),
    `${r.vsFastestDense.toFixed(2)}x`,
    Number.isNaN(r.vsSameDtype) ? '-' : `${r.vsSameDtype.toFixed(2)}x`,
  ];
}

function table(list: Row[]): string[][] {
  return [HEADER, ...list.map(cells)];
}

export function printTables(rows: Row[]): void {
  for (const shape of new Set(rows.map((r) => r.shape))) {
    const t = table(rows.filter((r) => r.shape === shape));
    const widths = HEADER.map((_, i) => Math.max(...t.map((row) => row[i]!.length)));
    console.log(`\nW ${shape} [out, in], batch 1`);
    for (const row of t)
      console.log(row.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  '));
  }
}

/** The same tables in Markdown (for a README). */
export function markdownTables(rows: Row[]): string {
  const lines: string[] = [];
  for (const shape of new Set(rows.map((r) => r.shape))) {
    lines.push(`**W ${shape} [out, in], batch 1**`, '', `| ${HEADER.join(' | ')} |`);
    lines.push(`|${HEADER.map((_, i) => (i === 0 ? ' --- ' : ' ---: ')).join('|')}|`);
    for (const r of rows.filter((p) => p.shape === shape)) lines.push(`| ${cells(r).join(' | ')} |`);
    lines.push('');
  }
  return `${lines.join('\n')}\n`;
}
