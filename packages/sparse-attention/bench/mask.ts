/**
 * Block mask construction time and memory against sequence length: createBlockMask for a causal
 * sliding window with sinks (StreamingLLM's mask) and for packed documents, compared with the size of
 * the dense S x S boolean mask it never builds.
 *
 *   node build/bench/mask.js [--lengths 8192,32768,131072,524288,1048576] [--window 4096]
 *     [--block 128] [--rounds 3] [--out bench/results/mask.json]
 */
import { machineFacts, markdownTable, median, numberOption, option, reportResults } from '@sparsekit/bench';
import {
  andMasks,
  causal,
  createBlockMask,
  documents,
  orMasks,
  sinks,
  slidingWindow,
} from '@sparsekit/sparse-attention';

const lengths = option('lengths', '8192,32768,131072,524288,1048576').split(',').map(Number);
const window = numberOption('window', 4096);
const blockSize = numberOption('block', 128);
const rounds = numberOption('rounds', 3);
const outPath = option('out', 'bench/results/mask.json');

const patterns = {
  [`causal + window ${window} + 4 sinks`]: () => andMasks(causal(), orMasks(sinks(4), slidingWindow(window))),
  'causal documents of 2048 tokens': (n: number) =>
    andMasks(
      causal(),
      documents(Array.from({ length: Math.ceil(n / 2048) }, (_, i) => Math.min(2048, n - i * 2048))),
    ),
};

const rows: Array<{
  pattern: string;
  length: number;
  ms: number;
  bytes: number;
  denseBytes: number;
  sparsity: number;
}> = [];
for (const [pattern, make] of Object.entries(patterns)) {
  for (const length of lengths) {
    const times: number[] = [];
    let bytes = 0;
    let sparsity = 0;
    for (let r = 0; r < rounds; r++) {
      const mod = make(length);
      const start = performance.now();
      const bm = createBlockMask(mod, { qLen: length, kvLen: length, blockSize });
      times.push(performance.now() - start);
      bytes = bm.bytes;
      sparsity = bm.sparsity();
    }
    rows.push({ pattern, length, ms: median(times), bytes, denseBytes: length * length, sparsity });
    console.log(`${pattern}, ${length}: ${median(times).toFixed(1)} ms, ${(bytes / 2 ** 20).toFixed(2)} MiB`);
  }
}
const table = markdownTable(
  ['pattern', 'tokens', 'build ms', 'block mask', 'dense bool mask', 'sparsity'],
  rows.map((r) => [
    r.pattern,
    String(r.length),
    r.ms.toFixed(1),
    `${(r.bytes / 2 ** 20).toFixed(2)} MiB`,
    `${(r.denseBytes / 2 ** 30).toFixed(1)} GiB`,
    `${r.sparsity.toFixed(2)}%`,
  ]),
);
reportResults({
  outPath,
  script: 'node build/bench/mask.js',
  table,
  machine: machineFacts(),
  data: { blockSize, rows },
});
