import { perplexity } from '@sparsekit/eval-harness';
import { choiceFlag, numberFlag, stringFlag, UsageError } from '../args.js';
import { BACKEND_FLAG, BACKEND_HELP, openBackend } from '../backend.js';
import type { Command } from '../command.js';
import { checkKnownText, defaultText, loadModel, modelDir, readText, requireTokenizer } from '../model-io.js';
import { evalTasks } from './eval-tasks.js';

export const evalCommand: Command = {
  name: 'eval',
  summary: 'perplexity on a text, or lm-eval-style tasks (zero- and few-shot accuracy)',
  help: `Usage: sparsekit eval [--model DIR] [--protocol sparsegpt|rolling] [--text FILE]
       sparsekit eval --tasks NAME|FILE[,...] [--data [TASK:]SPLIT=FILE] [--num-fewshot N] [--limit N]
                      [--output results.json] [--cache FILE] [--model DIR]

Perplexity on a text: 'sparsegpt' (default) scores disjoint windows of --max-length tokens as the
SparseGPT and Wanda papers do; 'rolling' is lm-evaluation-harness's rolling log-likelihood.

With --tasks: tasks in lm-evaluation-harness's format (YAML or JSON configs; output types
loglikelihood, multiple_choice, generate_until, loglikelihood_rolling; acc, acc_norm, perplexity,
exact_match, word/byte perplexity), on local data files only (nothing is downloaded). Bundled with
tiny-lm, from its held-out text: tinylm_cloze (LAMBADA-style last word) and tinylm_nextsent (the
next sentence among four). Prints the results table; --output writes lm-eval's results JSON.

Flags:
  --model DIR          Hugging Face folder (default: the bundled tiny-lm)
  --protocol P         sparsegpt | rolling (default sparsegpt)
  --text FILE          text to score (default: tiny-lm's held-out test text)
  --max-length N       window length in tokens (default: the model's maximum)
  --max-windows N      sparsegpt: score only the first N windows (default: all)
  --batch-size N       windows (requests) per forward pass (default 8)
  --tasks LIST         comma-separated bundled task names or task files (.yaml, .json)
  --data [T:]S=FILE    the local file of split S (of task T, or of every task); repeatable
  --num-fewshot N      few-shot examples per document (default: the task's num_fewshot, else 0)
  --limit N            evaluate the first N documents of each task
  --output FILE        write lm-eval's results JSON there
  --cache FILE         keep every request's result there (one file per model) and reuse them
${BACKEND_HELP}
  --json               print the result as JSON

Examples:
  sparsekit eval
  sparsekit eval --model out/tiny-lm-2of4 --protocol rolling --json
  sparsekit eval --model ./my-llama --text wiki.test.txt --max-length 2048
  sparsekit eval --tasks tinylm_cloze,tinylm_nextsent --output results.json
  sparsekit eval --model ./my-llama --tasks arc_easy.yaml --data test=arc-easy-test.jsonl`,
  flags: {
    ...BACKEND_FLAG,
    model: { type: 'string' },
    protocol: { type: 'string' },
    text: { type: 'string' },
    'max-length': { type: 'string' },
    'max-windows': { type: 'string' },
    'batch-size': { type: 'string' },
    tasks: { type: 'string' },
    data: { type: 'string', multiple: true },
    'num-fewshot': { type: 'string' },
    limit: { type: 'string' },
    output: { type: 'string' },
    cache: { type: 'string' },
  },
  async run({ flags, ui }) {
    if (flags.tasks === undefined) {
      for (const f of ['data', 'num-fewshot', 'limit', 'output', 'cache'])
        if (flags[f] !== undefined) throw new UsageError(`--${f} is for --tasks`, 'eval');
    } else {
      for (const f of ['protocol', 'text', 'max-length', 'max-windows'])
        if (flags[f] !== undefined) throw new UsageError(`--${f} is for perplexity, not --tasks`, 'eval');
      const backend = await openBackend('eval', flags, ui);
      try {
        return await evalTasks(flags, ui, modelDir(stringFlag(flags, 'model')), backend);
      } finally {
        await backend.dispose();
      }
    }
    const protocol = choiceFlag('eval', flags, 'protocol', ['sparsegpt', 'rolling'] as const, 'sparsegpt');
    const maxWindows = numberFlag('eval', flags, 'max-windows', 0, { integer: true, min: 1 });
    if (protocol === 'rolling' && flags['max-windows'] !== undefined)
      throw new UsageError(
        '--max-windows is for --protocol sparsegpt (rolling scores whole documents, for word and byte perplexity)',
        'eval',
      );
    const batchSize = numberFlag('eval', flags, 'batch-size', 8, { integer: true, min: 1 });
    const dir = modelDir(stringFlag(flags, 'model'));
    const textPath = stringFlag(flags, 'text');
    const backend = await openBackend('eval', flags, ui);
    try {
      const loaded = await loadModel(dir, backend);
      const maxLength = numberFlag('eval', flags, 'max-length', loaded.model.maxSequenceLength, {
        integer: true,
        min: 2,
        max: loaded.model.maxSequenceLength,
      });
      const tokenizer = requireTokenizer(loaded, dir);
      const text = textPath === undefined ? defaultText('test', dir, '--text') : readText(textPath, '--text');
      checkKnownText(tokenizer, tokenizer.encode(text), 'evaluation text');
      const result = await perplexity(loaded.model, tokenizer, text, {
        protocol,
        maxLength,
        batchSize,
        ...(maxWindows > 0 ? { maxWindows } : {}),
        onProgress: ui.progress('eval'),
      });
      ui.done();
      ui.say(
        `perplexity ${result.perplexity.toFixed(3)}  (${protocol}, ${result.scoredTokens} tokens scored)`,
      );
      if (result.wordPerplexity !== null) ui.say(`word perplexity ${result.wordPerplexity.toFixed(3)}`);
      if (result.bitsPerByte !== null) ui.say(`bits per byte ${result.bitsPerByte.toFixed(4)}`);
      ui.say(`took ${result.seconds.toFixed(1)} s`);
      return { model: dir, ...result };
    } finally {
      await backend.dispose();
    }
  },
};
