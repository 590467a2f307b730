import { perplexity } from '@sparsekit/eval-harness';
import { choiceFlag, numberFlag, stringFlag, UsageError } from '../args.js';
import { BACKEND_FLAG, BACKEND_HELP, openBackend } from '../backend.js';
import type { Command } from '../command.js';
import { checkKnownText, defaultText, loadModel, modelDir, readText, requireTokenizer } from '../model-io.js';

export const evalCommand: Command = {
  name: 'eval',
  summary: 'perplexity of a model on a text (SparseGPT/Wanda protocol or lm-eval rolling windows)',
  help: `Usage: sparsekit eval [--model DIR] [--protocol sparsegpt|rolling] [--text FILE]

Perplexity on a text: 'sparsegpt' (default) scores disjoint windows of --max-length tokens as the
SparseGPT and Wanda papers do; 'rolling' is lm-evaluation-harness's rolling log-likelihood.

Flags:
  --model DIR          Hugging Face folder (default: the bundled tiny-lm)
  --protocol P         sparsegpt | rolling (default sparsegpt)
  --text FILE          text to score (default: tiny-lm's held-out test text)
  --max-length N       window length in tokens (default: the model's maximum)
  --max-windows N      sparsegpt: score only the first N windows (default: all)
  --batch-size N       windows per forward pass (default 8)
${BACKEND_HELP}
  --json               print the result as JSON

Examples:
  sparsekit eval
  sparsekit eval --model out/tiny-lm-2of4 --protocol rolling --json
  sparsekit eval --model ./my-llama --text wiki.test.txt --max-length 2048`,
  flags: {
    ...BACKEND_FLAG,
    model: { type: 'string' },
    protocol: { type: 'string' },
    text: { type: 'string' },
    'max-length': { type: 'string' },
    'max-windows': { type: 'string' },
    'batch-size': { type: 'string' },
  },
  async run({ flags, ui }) {
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
