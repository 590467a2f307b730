// How `sparsekit prune` prints its reports.
import { patternText, type RecipeReport } from '@sparsekit/pruners';
import { table } from '../ui.js';

export function printReport(ui: { say(line?: string): void }, report: RecipeReport): void {
  const parameters = report.parameters === undefined ? '' : `, ${parameterChange(report.parameters)}`;
  if (report.structured !== undefined) {
    const st = report.structured;
    const s = st.blockShape!;
    ui.say(
      table(
        ['block', 'MLP channels deleted', 'heads deleted', 'ms'],
        st.blocks.map((b, i) => [
          `${i}`,
          `${b.channels.length}`,
          b.heads.join(' ') || '-',
          (1000 * b.seconds).toFixed(0),
        ]),
      ),
    );
    ui.say(
      `\nstructured: every block now has ${s.mlpChannels} MLP channels and ${s.heads} heads (${s.kvHeads} key/value) of ${s.headDim}${parameters}, ${report.seconds.toFixed(1)} s`,
    );
    return;
  }
  if (report.slice !== undefined) {
    const sl = report.slice;
    ui.say(
      table(
        ['stream point', 'width', 'kept', 'energy kept', 'ms'],
        sl.points.map((p) => [
          p.point,
          `${p.width}`,
          `${p.kept}`,
          `${(100 * p.energyKept).toFixed(1)}%`,
          (1000 * p.seconds).toFixed(0),
        ]),
      ),
    );
    ui.say(
      `\nSliceGPT ${sl.sparsity}: hidden ${sl.originalWidth} -> ${sl.slicedWidth}${parameters}, ${report.seconds.toFixed(1)} s`,
    );
    return;
  }
  ui.say(
    table(
      ['layer', 'pattern', 'sparsity', 'PQ index', 'recon. error', 'ms'],
      report.layers.map((l) => [
        l.name,
        patternText(l.pattern),
        `${(100 * l.sparsity).toFixed(1)}%`,
        l.pqIndex.toFixed(3),
        Number.isNaN(l.reconstructionError) ? '-' : l.reconstructionError.toExponential(2),
        Number.isNaN(l.seconds) ? '-' : (1000 * l.seconds).toFixed(0),
      ]),
    ),
  );
  ui.say(
    `\n${report.method} ${report.pattern === undefined ? '' : patternText(report.pattern)}: ${(100 * report.sparsity).toFixed(2)}% of the pruned layers' weights are zero; ${report.calibrationTokens} calibration tokens; ${report.seconds.toFixed(1)} s`,
  );
}

/** "parameters 853,120 -> 640,128 (75.0%)". */
function parameterChange({ before, after }: { before: number; after: number }): string {
  return `parameters ${before.toLocaleString('en-US')} -> ${after.toLocaleString('en-US')} (${(100 * (after / before)).toFixed(1)}%)`;
}
