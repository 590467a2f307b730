import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type CausalLM, Rng, Tensor, type Tokenizer } from '@sparsekit/core';
import { loadHfModel } from '@sparsekit/models/node';
import { afterAll, describe, expect, it } from 'vitest';
import { perplexity } from '../perplexity/perplexity.js';
import { parseTaskText, validateTaskConfig } from './config.js';
import { parseDocuments } from './dataset.js';
import { contextOf, evaluateTask, evaluateTasks, type LoadedTask } from './evaluate.js';
import { loadTask } from './load.js';
import { exactMatch, meanStderr } from './metrics.js';
import { encodePair, loglikelihoods } from './requests.js';
import { docToChoice, docToTarget, docToText, literal } from './template.js';

// The hf-tiny Llama checkpoint and its float64 reference logits (kept with the models package's fixtures).
const HF_TINY = fileURLToPath(new URL('../../../models/src/hf/fixtures/hf-tiny/llama', import.meta.url));
const expected = JSON.parse(readFileSync(join(HF_TINY, 'expected.json'), 'utf8')) as {
  tokens: number[];
  text: string;
  logits: number[][];
};
const work = mkdtempSync(join(tmpdir(), 'eval-tasks-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** log softmax(row)[target] in float64: the hand computation. */
function logSoftmax(row: readonly number[], target: number): number {
  const max = Math.max(...row);
  return row[target]! - max - Math.log(row.reduce((s, v) => s + Math.exp(v - max), 0));
}

const words = (from: number, to: number) => expected.text.split(' ').slice(from, to).join(' ');

describe('templates and fields, as lm-eval resolves them', () => {
  const arc = {
    question: 'Which?',
    choices: { text: ['red', 'blue sky'], label: ['A', 'B'] },
    answerKey: 'B',
  };
  it('reads feature names, renders Jinja templates, and parses rendered literals', () => {
    expect(docToText('Question: {{question}}\nAnswer:', arc)).toBe('Question: Which?\nAnswer:');
    expect(docToText('question', arc)).toBe('Which?');
    expect(docToTarget('{{choices.label.index(answerKey)}}', arc, true)).toBe(1);
    expect(docToChoice('{{choices.text}}', arc)).toEqual(['red', 'blue sky']);
    expect(docToChoice('{{[sol1, sol2]}}', { sol1: 'a', sol2: 'b' })).toEqual(['a', 'b']);
    expect(docToChoice('choices', { choices: ['x', 'y'] })).toEqual(['x', 'y']);
    expect(docToTarget('{{label}}', { label: '2' }, true)).toBe(2); // hellaswag's label is a string
    expect(docToTarget('label', { label: 0 }, true)).toBe(0); // piqa's is an int
    expect(docToTarget("{{' '+text.split(' ')[-1]}}", { text: 'a b c' }, false)).toBe(' c'); // lambada
    expect(docToText("{{text.split(' ')[:-1]|join(' ')}}", { text: 'a b c' })).toBe('a b');
    expect(literal("['it''s', \"b\", 3, True, None]".replace("''", "\\'"))).toEqual([
      "it's",
      'b',
      3,
      true,
      null,
    ]);
  });

  it('runs no code: attribute tricks render nothing, and malformed templates are typed errors', () => {
    expect(docToText("{{ ''.__class__ }}", {})).toBe('');
    expect(() => docToText('{{ unclosed', {})).toThrow(
      expect.objectContaining({ code: 'core/invalid-format' }),
    );
    expect(() => literal('[1, 2')).toThrow(/not a literal/);
    expect(() => docToChoice('{{ x }}', { x: 3 })).toThrow(/non-empty list/);
  });
});

describe('task configs', () => {
  const arcYaml = `task: arc_easy
tag:
  - ai2_arc
dataset_path: allenai/ai2_arc
dataset_name: ARC-Easy
output_type: multiple_choice
training_split: train
validation_split: validation
test_split: test
doc_to_text: "Question: {{question}}\\nAnswer:"
doc_to_target: "{{choices.label.index(answerKey)}}"
doc_to_choice: "{{choices.text}}"
should_decontaminate: true
doc_to_decontamination_query: "Question: {{question}}\\nAnswer:"
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
  - metric: acc_norm
    aggregation: mean
    higher_is_better: true
metadata:
  version: 1.0
`;
  it("loads lm-eval's own arc_easy / piqa / hellaswag / lambada fields", () => {
    const arc = validateTaskConfig(parseTaskText(arcYaml));
    expect(arc.output_type).toBe('multiple_choice');
    const piqa = validateTaskConfig(
      parseTaskText(
        'task: piqa\ndataset_path: baber/piqa\ndataset_name: null\noutput_type: multiple_choice\ntraining_split: train\nvalidation_split: validation\ntest_split: null\ndoc_to_text: "Question: {{goal}}\\nAnswer:"\ndoc_to_target: label\ndoc_to_choice: "{{[sol1, sol2]}}"\nshould_decontaminate: true\ndoc_to_decontamination_query: goal\nmetadata:\n  version: 1.0\n',
      ),
    );
    expect(piqa.test_split).toBeNull();
    const lambada = validateTaskConfig(
      parseTaskText(
        "task: lambada_openai\ndataset_path: EleutherAI/lambada_openai\ndataset_name: default\noutput_type: loglikelihood\ntest_split: test\ndoc_to_text: \"{{text.split(' ')[:-1]|join(' ')}}\"\ndoc_to_target: \"{{' '+text.split(' ')[-1]}}\"\nmetric_list:\n  - metric: perplexity\n    aggregation: perplexity\n    higher_is_better: false\n  - metric: acc\n    aggregation: mean\n    higher_is_better: true\n",
      ),
    );
    expect(lambada.metric_list!.map((m) => m.metric)).toEqual(['perplexity', 'acc']);
    // hellaswag preprocesses its documents with Python: refused, with what to do instead.
    const hellaswag =
      'task: hellaswag\ndataset_path: Rowan/hellaswag\noutput_type: multiple_choice\ntraining_split: train\nvalidation_split: validation\nprocess_docs: !function utils.process_docs\ndoc_to_text: "{{query}}"\ndoc_to_target: "{{label}}"\ndoc_to_choice: "choices"\n';
    expect(() => validateTaskConfig(parseTaskText(hellaswag))).toThrow(/process_docs is Python code/);
    expect(validateTaskConfig(parseTaskText(hellaswag.replace(/process_docs.*\n/, ''))).doc_to_choice).toBe(
      'choices',
    );
  });

  it('refuses what it would otherwise ignore or get wrong', () => {
    const bad = (extra: string) => () => validateTaskConfig(parseTaskText(`${arcYaml}${extra}`));
    expect(bad('filter_list: []\n')).toThrow(/filters are not implemented/);
    expect(bad('frobnicate: 1\n')).toThrow(/unknown field frobnicate/);
    expect(bad('num_fewshot: -1\n')).toThrow(/num_fewshot/);
    expect(() =>
      validateTaskConfig(parseTaskText(arcYaml.replace('metric: acc_norm', 'metric: bleu'))),
    ).toThrow(/metric bleu is not one of/);
    expect(() => parseTaskText('task: [unclosed')).toThrow(
      expect.objectContaining({ code: 'core/invalid-format' }),
    );
    expect(() => parseDocuments('{"a": 1}\n{oops}\n', 'x.jsonl')).toThrow(/x\.jsonl:2: not a JSON line/);
  });

  it('loads a task from disk: include, data files beside the config, and overrides from the caller', () => {
    writeFileSync(join(work, '_base.yaml'), arcYaml.replace('task: arc_easy', 'task: base'));
    writeFileSync(
      join(work, 'arc_local.yaml'),
      'include: _base.yaml\ntask: arc_local\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: arc.jsonl\n    train: arc-train.jsonl\n',
    );
    const doc = (q: string, a: string) =>
      JSON.stringify({ question: q, choices: { text: ['w1', 'w2'], label: ['A', 'B'] }, answerKey: a });
    writeFileSync(join(work, 'arc.jsonl'), `${doc('w3', 'A')}\n${doc('w4', 'B')}\n`);
    writeFileSync(join(work, 'arc-train.jsonl'), `${doc('w5', 'B')}\n`);
    const task = loadTask(join(work, 'arc_local.yaml'));
    expect(task.config.task).toBe('arc_local');
    expect(task.config.output_type).toBe('multiple_choice'); // from the include
    expect(task.docs).toHaveLength(2);
    expect(task.fewshotDocs).toHaveLength(1);
    writeFileSync(join(work, 'other.jsonl'), `${doc('w6', 'A')}\n`);
    expect(
      loadTask(join(work, 'arc_local.yaml'), { dataFiles: { test: join(work, 'other.jsonl') } }).docs,
    ).toHaveLength(1);
    writeFileSync(join(work, 'arc_hub.yaml'), arcYaml);
    expect(() => loadTask(join(work, 'arc_hub.yaml'))).toThrow(/nothing is downloaded: .*--data test=FILE/);
  });
});

describe('requests on the hf-tiny checkpoints, against hand computations', () => {
  it.each(['gpt2', 'opt', 'llama'])(
    '%s: log-likelihoods of continuations equal the sums of log-softmax of the reference logits',
    async (family) => {
      const dir = join(HF_TINY, '..', family);
      const ref = JSON.parse(readFileSync(join(dir, 'expected.json'), 'utf8')) as typeof expected;
      const hand = (k: number) => {
        let ll = 0;
        for (let t = k; t < ref.tokens.length; t++) ll += logSoftmax(ref.logits[t - 1]!, ref.tokens[t]!);
        return ll;
      };
      const { model, tokenizer } = await loadHfModel(dir);
      const refWords = (from: number, to: number) => ref.text.split(' ').slice(from, to).join(' ');
      const pairs: [string, string][] = [3, 6, 11].map((k) => [refWords(0, k), ` ${refWords(k, 12)}`]);
      const calls: number[] = [];
      const counting: CausalLM = {
        vocabSize: model.vocabSize,
        maxSequenceLength: model.maxSequenceLength,
        logits: (ids) => {
          calls.push(ids.shape[0]!);
          return model.logits(ids);
        },
      };
      const got = await loglikelihoods(counting, tokenizer!, [...pairs, pairs[0]!], { batchSize: 4 });
      [3, 6, 11].forEach((k, i) => {
        expect(got[i]!.loglikelihood, `context of ${k} tokens`).toBeCloseTo(hand(k), 3);
      });
      expect(got[3]).toEqual(got[0]); // the repeated pair is computed once
      // Every pair is 12 tokens long (an input of 11): one call of three (the repeat is not sent again).
      expect(calls).toEqual([3]);
      // The greedy continuation after the first token is the argmax of the first row: isGreedy.
      const row = ref.logits[0]!;
      const best = row.indexOf(Math.max(...row));
      const [greedy] = await loglikelihoods(model, tokenizer!, [[refWords(0, 1), ` w${best}`]]);
      expect(greedy!.isGreedy).toBe(true);
      expect(greedy!.loglikelihood).toBeCloseTo(logSoftmax(row, best), 4);
    },
  );

  it('multiple choice: acc picks the largest log-likelihood, acc_norm the largest per character', async () => {
    const { model, tokenizer } = await loadHfModel(HF_TINY);
    const docs = [
      { ctx: words(0, 4), choices: [words(4, 5), words(4, 7), 'w63'], gold: 1 },
      { ctx: words(0, 8), choices: ['w9', words(8, 9)], gold: 1 },
    ];
    const task: LoadedTask = {
      config: validateTaskConfig({
        task: 'tiny_mc',
        output_type: 'multiple_choice',
        test_split: 'test',
        doc_to_text: 'ctx',
        doc_to_target: 'gold',
        doc_to_choice: 'choices',
      }),
      docs,
    };
    const result = await evaluateTask(model, tokenizer!, task);
    const hand = docs.map((d) => {
      const k = d.ctx.split(' ').length;
      const lls = d.choices.map((c) => {
        const ids = c.split(' ').map((w) => Number(w.slice(1)));
        // The choice's tokens scored one by one from the context: only continuations that follow the
        // fixture's sequence have reference logits past their first token.
        let ll = logSoftmax(expected.logits[k - 1]!, ids[0]!);
        for (let j = 1; j < ids.length; j++) ll += logSoftmax(expected.logits[k - 1 + j]!, ids[j]!);
        return ll;
      });
      const acc = lls.indexOf(Math.max(...lls)) === d.gold ? 1 : 0;
      const norm = lls.map((l, i) => l / d.choices[i]!.length);
      return { acc, accNorm: norm.indexOf(Math.max(...norm)) === d.gold ? 1 : 0 };
    });
    expect(result.samples.map((s) => s.metrics.acc)).toEqual(hand.map((h) => h.acc));
    expect(result.samples.map((s) => s.metrics.acc_norm)).toEqual(hand.map((h) => h.accNorm));
    expect(result.metrics.acc!.value).toBe((hand[0]!.acc + hand[1]!.acc) / 2);
  });

  it('loglikelihood_rolling agrees with the rolling perplexity of the same text', async () => {
    const { model, tokenizer } = await loadHfModel(HF_TINY);
    const texts = [expected.text, words(0, 5)];
    const task: LoadedTask = {
      config: validateTaskConfig({
        task: 'tiny_rolling',
        output_type: 'loglikelihood_rolling',
        test_split: 'test',
        doc_to_target: 'text',
      }),
      docs: texts.map((text) => ({ text })),
    };
    const result = await evaluateTask(model, tokenizer!, task);
    const reference = await perplexity(model, tokenizer!, texts, { protocol: 'rolling' });
    expect(result.metrics.word_perplexity!.value).toBeCloseTo(reference.wordPerplexity!, 6);
    expect(result.metrics.bits_per_byte!.value).toBeCloseTo(reference.bitsPerByte!, 6);
    expect(result.metrics.word_perplexity!.stderr).toBe('N/A');
  });
});

/** Characters as tokens; the model predicts, after any character, the next letter of "abcdef|". */
const chars: Tokenizer = {
  vocabSize: 128,
  encode: (t) => [...t].map((c) => c.charCodeAt(0)),
  decode: (ids) => String.fromCharCode(...ids),
  eosTokenId: 0,
};
const alphabet: CausalLM = {
  vocabSize: 128,
  maxSequenceLength: 64,
  logits(ids: Tensor<'i32'>) {
    const [batch, seq] = ids.shape as [number, number];
    const out = new Float32Array(batch * seq * 128);
    const order = 'abcdef|';
    for (let i = 0; i < batch * seq; i++) {
      const c = String.fromCharCode(ids.data[i]!);
      const next = order[(order.indexOf(c) + 1) % order.length] ?? 'a';
      out[i * 128 + next.charCodeAt(0)] = 5;
    }
    return new Tensor('f32', [batch, seq, 128], out);
  },
};

describe('contexts, generation and the results file', () => {
  it('moves trailing spaces of the context to the continuation, as lm-eval pairs them', () => {
    expect(encodePair(chars, 'ab ', 'c')).toEqual([
      [97, 98],
      [32, 99],
    ]);
    expect(encodePair(chars, '', 'c')).toEqual([[0], [99]]);
  });

  it('builds few-shot contexts: description, shots with their answers, the document (never itself)', () => {
    const task: LoadedTask = {
      config: validateTaskConfig({
        task: 't',
        output_type: 'multiple_choice',
        test_split: 'test',
        description: 'Pick one.\n\n',
        doc_to_text: 'Q: {{q}}\nA:',
        doc_to_target: 'gold',
        doc_to_choice: 'choices',
        fewshot_config: { sampler: 'first_n' },
      }),
      docs: [0, 1, 2].map((i) => ({ q: `q${i}`, choices: ['x', 'y'], gold: i % 2 })),
    };
    task.fewshotDocs = task.docs;
    expect(contextOf(task, 0, 2, new Rng(1))).toBe('Pick one.\n\nQ: q1\nA: y\n\nQ: q2\nA: x\n\nQ: q0\nA:');
    const drawn = { ...task, config: { ...task.config, fewshot_config: { sampler: 'default' as const } } };
    const a = contextOf(drawn, 1, 1, new Rng(1234));
    expect(a).toBe(contextOf(drawn, 1, 1, new Rng(1234))); // seeded
    expect(a.endsWith('Q: q1\nA:')).toBe(true);
    expect(a.indexOf('Q: q1')).toBe(a.lastIndexOf('Q: q1'));
  });

  it('generates greedily until a stop string; exact_match with its options', async () => {
    const task: LoadedTask = {
      config: validateTaskConfig({
        task: 'gen',
        output_type: 'generate_until',
        test_split: 'test',
        doc_to_text: 'start',
        doc_to_target: 'answer',
        generation_kwargs: { until: ['|'], max_gen_toks: 20 },
      }),
      docs: [
        { start: 'a', answer: 'bcdef' },
        { start: 'c', answer: 'DEF' },
        { start: 'e', answer: 'wrong' },
      ],
    };
    const r = await evaluateTask(alphabet, chars, task);
    expect(r.samples.map((s) => s.metrics.exact_match)).toEqual([1, 0, 0]);
    expect(exactMatch('def', ['DEF'], { metric: 'exact_match', ignore_case: true })).toBe(1);
    expect(exactMatch('d.e,f', ['def'], { metric: 'exact_match', ignore_punctuation: true })).toBe(1);
    expect(
      exactMatch('answer: 42', ['42'], { metric: 'exact_match', regexes_to_ignore: ['^answer: '] }),
    ).toBe(1);
  });

  it("writes lm-eval's results shape, with means and their standard errors", async () => {
    const mc: LoadedTask = {
      config: validateTaskConfig({
        task: 'letters',
        output_type: 'multiple_choice',
        test_split: 'test',
        doc_to_text: 'ctx',
        doc_to_target: 'gold',
        doc_to_choice: 'choices',
        metadata: { version: 2.0 },
      }),
      docs: [
        { ctx: 'a', choices: ['b', 'c'], gold: 0 },
        { ctx: 'b', choices: ['c', 'd'], gold: 0 },
        { ctx: 'c', choices: ['e', 'd'], gold: 0 },
        { ctx: 'd', choices: ['f', 'e'], gold: 1 },
      ],
      original: 10,
    };
    const out = await evaluateTasks(alphabet, chars, [mc], { limit: 4, model: 'alphabet' });
    // The continuation is " b": the model follows 'a' with 'b' only after a letter, so the space decides.
    const accs = out.taskResults[0]!.samples.map((s) => s.metrics.acc!);
    const mean = accs.reduce((s, x) => s + x, 0) / 4;
    expect(out.results.letters).toEqual({
      alias: 'letters',
      'acc,none': mean,
      'acc_stderr,none': meanStderr(accs),
      'acc_norm,none': expect.any(Number),
      'acc_norm_stderr,none': expect.any(Number),
    });
    expect(out.versions).toEqual({ letters: 2 });
    expect(out['n-shot']).toEqual({ letters: 0 });
    expect(out['n-samples']).toEqual({ letters: { original: 10, effective: 4 } });
    expect(out.higher_is_better).toEqual({ letters: { acc: true, acc_norm: true } });
    expect(out.configs.letters!.task).toBe('letters');
    expect(out.config).toMatchObject({ model: 'alphabet', limit: 4, fewshot_seed: 1234 });
    expect(meanStderr([1, 0, 1, 1])).toBeCloseTo(Math.sqrt(0.25 / 4), 12);
  });
});
