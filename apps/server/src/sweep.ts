// A sweep job inside a worker: the dense model evaluated, then each point pruned and evaluated, then
// one comparison report over them (eval-harness's report through `sparsekit report`). Each step is
// a `sparsekit` command line; the first that fails fails the sweep, with its exit code.
import { writeFileSync } from 'node:fs';
import type { SweepPlan } from './protocol.js';

type Run = (argv: readonly string[]) => Promise<{ code: number; stdout: string }>;

export async function runSweep(
  plan: SweepPlan,
  run: Run,
  log: (line: string) => void,
): Promise<{ code: number; stdout: string }> {
  const total = plan.points.length + 2;
  const step = async (n: number, what: string, argv: readonly string[], file?: string) => {
    log(`sweep: ${n}/${total} ${what}`);
    const r = await run(argv);
    if (r.code !== 0) return r.code;
    if (file !== undefined) writeFileSync(file, r.stdout);
    return 0;
  };
  let code = await step(1, 'dense: eval', plan.dense.eval, plan.dense.evalFile);
  if (code !== 0) return { code, stdout: '' };
  const inputs = [`--input=dense=${plan.dense.evalFile}`];
  for (const [i, p] of plan.points.entries()) {
    code = await step(i + 2, `${p.label}: prune`, p.prune);
    if (code !== 0) return { code, stdout: '' };
    code = await step(i + 2, `${p.label}: eval`, p.eval, p.evalFile);
    if (code !== 0) return { code, stdout: '' };
    inputs.push(`--input=${p.label}=${p.evalFile}`);
  }
  log(`sweep: ${total}/${total} report`);
  return run(['report', ...inputs, `--out=${plan.reportDir}`, '--title=Sweep', '--json']);
}
