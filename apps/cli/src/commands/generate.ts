import { generate } from '@sparsekit/models';
import { numberFlag, requireFlag, stringFlag, UsageError } from '../args.js';
import { BACKEND_FLAG, BACKEND_HELP, openBackend } from '../backend.js';
import type { Command } from '../command.js';
import { loadModel, modelDir, requireTokenizer } from '../model-io.js';

export const generateCommand: Command = {
  name: 'generate',
  summary: 'continue a prompt and print decode tokens/s',
  help: `Usage: sparsekit generate --prompt TEXT [--model DIR] [--max-new-tokens N]

Continues the prompt with the KV cache (greedy unless --temperature is given) and prints the text
and the measured prefill and decode speed. Sparse (packed) layers run their sparse kernels.

Flags:
  --prompt TEXT          the prompt (required)
  --model DIR            Hugging Face folder (default: the bundled tiny-lm)
  --max-new-tokens N     tokens to generate (default 48; prompt + new must fit the model)
  --temperature T        0 = greedy (default 0)
  --top-k K / --top-p P  sampling filters
  --seed N               sampling seed (default 0)
${BACKEND_HELP}
  --json                 print the result as JSON

Examples:
  sparsekit generate --prompt "The whale"
  sparsekit generate --model out/tiny-lm-2of4 --prompt "Call me" --temperature 0.8 --top-p 0.9`,
  flags: {
    ...BACKEND_FLAG,
    model: { type: 'string' },
    prompt: { type: 'string' },
    'max-new-tokens': { type: 'string' },
    temperature: { type: 'string' },
    'top-k': { type: 'string' },
    'top-p': { type: 'string' },
    seed: { type: 'string' },
  },
  async run({ flags, ui }) {
    const prompt = requireFlag('generate', flags, 'prompt', 'the text to continue');
    const maxNew = numberFlag('generate', flags, 'max-new-tokens', 48, { integer: true, min: 1 });
    const temperature = numberFlag('generate', flags, 'temperature', 0, { min: 0 });
    const topK = numberFlag('generate', flags, 'top-k', 0, { integer: true, min: 0 });
    const topP = numberFlag('generate', flags, 'top-p', 1, { min: 0, max: 1 });
    const seed = numberFlag('generate', flags, 'seed', 0, { integer: true, min: 0 });
    const dir = modelDir(stringFlag(flags, 'model'));
    const backend = await openBackend('generate', flags, ui);
    try {
      const loaded = await loadModel(dir, backend);
      const tokenizer = requireTokenizer(loaded, dir);
      const ids = tokenizer.encode(prompt);
      if (ids.length === 0)
        throw new UsageError('the prompt encodes to no tokens; give a non-empty --prompt', 'generate');
      const room = loaded.model.maxSequenceLength - ids.length;
      if (room < 1) {
        throw new UsageError(
          `the prompt is ${ids.length} tokens, the model takes ${loaded.model.maxSequenceLength}: shorten --prompt`,
          'generate',
        );
      }
      const out = generate(loaded.model, ids, {
        maxNewTokens: Math.min(maxNew, room),
        temperature,
        ...(topK > 0 ? { topK } : {}),
        ...(topP < 1 ? { topP } : {}),
        seed,
        onProgress: ui.progress('generate'),
      });
      ui.done();
      const text = tokenizer.decode(out.tokens);
      // Prompt and continuation decoded together, so the tokenizer's own spacing joins them.
      ui.say(tokenizer.decode([...ids, ...out.tokens]));
      ui.say();
      ui.say(
        `${out.tokens.length} tokens; decode ${out.decodeTokensPerSecond.toFixed(1)} tokens/s, prefill ${out.prefillTokensPerSecond.toFixed(1)} tokens/s`,
      );
      return { model: dir, prompt, text, ...out };
    } finally {
      await backend.dispose();
    }
  },
};
