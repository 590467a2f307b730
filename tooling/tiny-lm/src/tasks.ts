/**
 * The zero-shot tasks bundled with tiny-lm, built from its held-out test split (never trained on),
 * in lm-evaluation-harness's task format:
 *
 *   node tooling/tiny-lm/dist/tasks.js [--out packages/models/tiny-lm/tasks]
 *
 * - tinylm_cloze (LAMBADA-style, output loglikelihood): passages of up to 60 words whose last
 *   word (3+ letters, one tiny-lm token after a space) already appears in the passage, as LAMBADA's
 *   targets mostly do; the target is that word (its perplexity, and acc: whether greedy decoding
 *   gives it).
 * - tinylm_nextsent (multiple_choice): two sentences of context; the sentence that follows them
 *   against three sentences from other paragraphs of the split (chance: 25%).
 *
 * Seeded (Rng 0): the same files every run.
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { option, writeTextAtomic } from '@sparsekit/bench';
import { Rng } from '@sparsekit/core';
import { loadHfModel, tinyLmPath } from '@sparsekit/models/node';

const out = option('out', join(tinyLmPath(), 'tasks'));
const MAX_CONTEXT_WORDS = 60;
const CLOZE_DOCS = 500;
const NEXTSENT_DOCS = 400;
const MAX_SENTENCE_WORDS = 30;

const paragraphs = readFileSync(join(tinyLmPath(), 'test.txt'), 'utf8')
  .split('\n')
  .map((p) => p.replace(/\s+/g, ' ').trim())
  .filter((p) => p !== '');
/** Sentences per paragraph: split after . ! or ? before a capital or a quote. */
const sentences = paragraphs.map((p) =>
  p.split(/(?<=[.!?])\s+(?=["'A-Z])/).filter((s) => s.split(' ').length >= 4),
);
const rng = new Rng(0);

// Cloze: passages of up to 60 words within a paragraph, ending with a word of 3+ letters that
// tiny-lm's tokenizer writes as one token after a space (so a greedy decode can give it exactly),
// and that already appears in the passage (as LAMBADA's targets mostly do).
const { tokenizer } = await loadHfModel(tinyLmPath());
const cloze: string[] = [];
for (const p of paragraphs) {
  const words = p.split(' ');
  for (let i = 12; i < words.length; i++) {
    const last = words[i]!;
    if (!/^[A-Za-z]{3,}$/.test(last) || tokenizer!.encode(` ${last}`).length !== 1) continue;
    const context = words.slice(Math.max(0, i - MAX_CONTEXT_WORDS), i);
    if (!context.some((c) => c.replace(/[^A-Za-z]/g, '').toLowerCase() === last.toLowerCase())) continue;
    cloze.push(JSON.stringify({ text: [...context, last].join(' ') }));
  }
}
const clozeDocs = Array.from(rng.sample(cloze.length, Math.min(CLOZE_DOCS, cloze.length)))
  .sort((a, b) => a - b)
  .map((i) => cloze[i]!);

// Next sentence: context = two consecutive sentences, then the true next sentence among three drawn
// from other paragraphs; the gold position is drawn too.
const clip = (s: string) => s.split(' ').slice(0, MAX_SENTENCE_WORDS).join(' ');
const candidates: { p: number; i: number }[] = [];
sentences.forEach((list, p) => {
  for (let i = 2; i < list.length; i++) candidates.push({ p, i });
});
const nextsentDocs = Array.from(rng.sample(candidates.length, Math.min(NEXTSENT_DOCS, candidates.length)))
  .sort((a, b) => a - b)
  .map((k) => {
    const { p, i } = candidates[k]!;
    const list = sentences[p]!;
    const others: string[] = [];
    while (others.length < 3) {
      const q = rng.int(sentences.length);
      if (q === p || sentences[q]!.length === 0) continue;
      others.push(clip(sentences[q]![rng.int(sentences[q]!.length)]!));
    }
    const gold = rng.int(4);
    const choices = [...others];
    choices.splice(gold, 0, clip(list[i]!));
    return JSON.stringify({ context: `${list[i - 2]} ${list[i - 1]}`, choices, gold });
  });

mkdirSync(out, { recursive: true });
writeTextAtomic(join(out, 'tinylm_cloze.jsonl'), `${clozeDocs.join('\n')}\n`);
writeTextAtomic(join(out, 'tinylm_nextsent.jsonl'), `${nextsentDocs.join('\n')}\n`);
writeTextAtomic(
  join(out, 'tinylm_cloze.yaml'),
  `# LAMBADA-style last-word cloze on tiny-lm's held-out text (lambada_openai's fields; built by
# tooling/tiny-lm/src/tasks.ts).
task: tinylm_cloze
dataset_path: json
dataset_kwargs:
  data_files:
    test: tinylm_cloze.jsonl
output_type: loglikelihood
test_split: test
doc_to_text: "{{text.split(' ')[:-1]|join(' ')}}"
doc_to_target: "{{' '+text.split(' ')[-1]}}"
metric_list:
  - metric: perplexity
    aggregation: perplexity
    higher_is_better: false
  - metric: acc
    aggregation: mean
    higher_is_better: true
metadata:
  version: 1.0
`,
);
writeTextAtomic(
  join(out, 'tinylm_nextsent.yaml'),
  `# The next sentence among four (three from other paragraphs) on tiny-lm's held-out text (built by
# tooling/tiny-lm/src/tasks.ts). Chance: 25%.
task: tinylm_nextsent
dataset_path: json
dataset_kwargs:
  data_files:
    test: tinylm_nextsent.jsonl
output_type: multiple_choice
test_split: test
doc_to_text: "{{context}}"
doc_to_target: gold
doc_to_choice: choices
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
  - metric: acc_norm
    aggregation: mean
    higher_is_better: true
metadata:
  version: 1.0
`,
);
console.log(`${out}: tinylm_cloze (${clozeDocs.length} documents), tinylm_nextsent (${nextsentDocs.length})`);
