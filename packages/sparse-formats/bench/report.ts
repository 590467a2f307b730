// Speedups, the target check and the printed / Markdown tables of the kernel benchmark.

export interface Row {
  shape: string;
  batch: number;
  kernel: string;
  dtype: 'f32' | 'f16';
  dense: boolean;
  threads: number;
  sparsity: number;
  weightBytes: number;
  copies: number;
  workingSetBytes: number;
  reps: number;
  coldMs: number;
  warmMs: number;
  gflops: number;
  gbs: number;
  bandwidthShare: number;
  speedup: number;
  speedupSameDtype: number;
}

const group = (r: Row) => `${r.shape} b=${r.batch}`;

/** Fill `speedup` (vs the fastest f32 dense baseline) and `speedupSameDtype` (vs our dense kernel). */
export function addSpeedups(rows: Row[]): void {
  for (const r of rows) {
    const peers = rows.filter((p) => group(p) === group(r));
    const baselines = peers.filter((p) => p.dense && p.dtype === 'f32');
    const fastest = Math.min(...baselines.map((p) => p.coldMs));
    r.speedup = baselines.length === 0 ? Number.NaN : fastest / r.coldMs;
    const ours = peers.find((p) => p.kernel === `dense ${r.dtype}`);
    r.speedupSameDtype = ours === undefined ? Number.NaN : ours.coldMs / r.coldMs;
  }
}

export interface TargetCheck {
  target: string;
  measured: string;
  met: boolean;
}

/** The targets, checked on the best row of each pattern (per shape). */
export function checkTargets(rows: Row[]): TargetCheck[] {
  addSpeedups(rows);
  const checks: TargetCheck[] = [];
  const shapes = [...new Set(rows.map((r) => r.shape))];
  const best = (shape: string, batch: number, prefix: string) =>
    rows
      .filter((r) => r.shape === shape && r.batch === batch && r.kernel.startsWith(prefix))
      .sort((a, b) => b.speedup - a.speedup)[0];
  const goals: Array<[number, string, number]> = [
    [1, '2:4', 1.5],
    [1, '70%', 2.5],
    [1, '90%', 5],
    [128, '70%', 1],
    [128, '90%', 2],
  ];
  for (const shape of shapes) {
    for (const [batch, prefix, goal] of goals) {
      const r = best(shape, batch, prefix);
      if (r === undefined || Number.isNaN(r.speedup)) continue;
      checks.push({
        target: `${shape} batch ${batch} ${prefix} >= ${goal}x`,
        measured: `${r.speedup.toFixed(2)}x (${r.kernel})`,
        met: r.speedup >= goal,
      });
    }
    const decode = rows.filter((r) => r.shape === shape && r.batch === 1 && r.kernel !== 'tfjs-wasm matMul');
    for (const r of decode) {
      if (r.kernel.startsWith('onnxruntime')) continue;
      checks.push({
        target: `${shape} batch 1 ${r.kernel} >= 60% of triad bandwidth`,
        measured: `${(100 * r.bandwidthShare).toFixed(0)}%`,
        met: r.bandwidthShare >= 0.6,
      });
    }
  }
  return checks;
}

const HEADER = [
  'kernel',
  'sparsity',
  'MB',
  'copies',
  'cold ms',
  'warm ms',
  'GFLOP/s',
  'GB/s',
  '% bw',
  'vs dense',
  'vs same dtype',
];

function cells(r: Row): string[] {
  return [
    `${r.kernel}${r.threads === 1 ? ' (1 thread)' : ''}`,
    r.dense ? '-' : `${(100 * r.sparsity).toFixed(1)}%`,
    (r.weightBytes / 1e6).toFixed(1),
    String(r.copies),
    r.coldMs.toFixed(3),
    r.warmMs.toFixed(3),
    r.gflops.toFixed(1),
    r.gbs.toFixed(1),
    (100 * r.bandwidthShare).toFixed(0),
    `${r.speedup.toFixed(2)}x`,
    Number.isNaN(r.speedupSameDtype) ? '-' : `${r.speedupSameDtype.toFixed(2)}x`,
  ];
}

function groups(rows: Row[]): Map<string, Row[]> {
  const map = new Map<string, Row[]>();
  for (const r of rows) map.set(group(r), [...(map.get(group(r)) ?? []), r]);
  return map;
}

export function printTable(rows: Row[], triadGBs: number): void {
  console.log(`\nmemory bandwidth (triad): ${triadGBs.toFixed(1)} GB/s`);
  for (const [name, list] of groups(rows)) {
    const table = [HEADER, ...list.map(cells)];
    const widths = HEADER.map((_, i) => Math.max(...table.map((row) => row[i]!.length)));
    console.log(`\nW ${name}`);
    for (const row of table)
      console.log(row.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  '));
  }
}

export function markdownTable(rows: Row[], triadGBs: number, command: string, cpu: string): string {
  const lines = [`Command: \`${command}\` on ${cpu}; triad bandwidth ${triadGBs.toFixed(1)} GB/s.`, ''];
  for (const [name, list] of groups(rows)) {
    lines.push(
      `**W ${name}**`,
      '',
      `| ${HEADER.join(' | ')} |`,
      `|${HEADER.map((_, i) => (i === 0 ? ' --- ' : ' ---: ')).join('|')}|`,
    );
    for (const r of list) lines.push(`| ${cells(r).join(' | ')} |`);
    lines.push('');
  }
  return `${lines.join('\n')}\n`;
}
