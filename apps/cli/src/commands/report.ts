// `sparsekit report`: a comparison of models from the JSON their evaluations wrote (lm-eval results
// from `eval --tasks --output`, `eval --json` perplexity, `bench model --json` speed), as Markdown,
// SVG and a standalone HTML page.
import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { writeFileAtomic } from '@sparsekit/core/node';
import {
  addToEntry,
  type ComparisonEntry,
  comparisonChart,
  comparisonHtml,
  comparisonMarkdown,
} from '@sparsekit/eval-harness';
import { requireFlag, stringFlag, UsageError } from '../args.js';
import type { Command } from '../command.js';
import { readText } from '../model-io.js';

export const reportCommand: Command = {
  name: 'report',
  summary: 'compare models (perplexity, task accuracy, speed, bytes) as Markdown, SVG and HTML',
  help: `Usage: sparsekit report --input NAME=FILE[,FILE...] [--input ...] --out DIR [--title T]

One row per --input: NAME, and what its JSON files say: lm-eval results files (sparsekit eval
--tasks --output FILE), perplexity results (sparsekit eval --json), speed results (sparsekit bench
model --json: decode and prefill tokens/s, time to first token, peak RSS, model bytes). Writes
report.md (table), report.svg (bar charts: perplexity, each task's acc_norm or acc, decode speed,
bytes), report.html (both, standalone) and report.json to DIR. A row named "dense" is the baseline.

Flags:
  --input NAME=FILES   a row: its label and comma-separated JSON files (repeat for each model)
  --out DIR            where to write the report (created if needed)
  --title T            the report's title (default "Model comparison")
  --json               print the entries as JSON

Examples:
  sparsekit eval --tasks tinylm_cloze,tinylm_nextsent --output dense-tasks.json
  sparsekit eval --json > dense-ppl.json
  sparsekit report --input dense=dense-tasks.json,dense-ppl.json --input 2:4=s24-tasks.json --out report`,
  flags: {
    input: { type: 'string', multiple: true },
    out: { type: 'string' },
    title: { type: 'string' },
  },
  async run({ flags, ui }) {
    const inputs = flags.input === undefined ? [] : ([] as string[]).concat(flags.input as string | string[]);
    if (inputs.length === 0) throw new UsageError('give at least one --input NAME=FILE[,FILE...]', 'report');
    const out = resolve(requireFlag('report', flags, 'out', 'the folder to write the report to'));
    const title = stringFlag(flags, 'title') ?? 'Model comparison';
    const entries: ComparisonEntry[] = inputs.map((input) => {
      const m = /^([^=]+)=(.+)$/.exec(input);
      if (m === null) throw new UsageError(`--input must be NAME=FILE[,FILE...], not "${input}"`, 'report');
      let entry: ComparisonEntry = { name: m[1]!.trim() };
      for (const file of m[2]!.split(',')) {
        const text = readText(file.trim(), '--input');
        let doc: unknown;
        try {
          doc = JSON.parse(text);
        } catch (error) {
          throw new UsageError(`--input ${file}: not JSON (${(error as Error).message})`, 'report');
        }
        entry = addToEntry(entry, doc, file);
      }
      return entry;
    });
    if (new Set(entries.map((e) => e.name)).size !== entries.length)
      throw new UsageError('each --input needs its own NAME', 'report');
    await mkdir(out, { recursive: true });
    const write = (file: string, text: string) =>
      writeFileAtomic(join(out, file), (f) => f.writeFile(text, 'utf8'));
    const markdown = comparisonMarkdown(entries);
    await write('report.md', `# ${title}\n\n${markdown}\n\n![comparison](report.svg)\n`);
    await write('report.svg', `${comparisonChart(entries, title)}\n`);
    await write('report.html', comparisonHtml(entries, title));
    await write('report.json', `${JSON.stringify({ title, entries }, null, 2)}\n`);
    ui.say(markdown);
    ui.say(`\nreport: ${join(out, 'report.html')} (and report.md, report.svg, report.json)`);
    return { title, entries, report: out };
  },
};
