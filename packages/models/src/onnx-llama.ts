// A Llama-family model's decode step as an ONNX graph (core's writer), so that onnxruntime can run
// the same weights as a dense baseline: one token in, its logits and the grown key/value cache out.
//
// Inputs: input_ids i64 [1], position i64 [1], and per layer l past_key.l / past_value.l f32
// [kvHeads, past, headDim] (past may be 0). Outputs: logits f32 [1, vocab], present_key.l /
// present_value.l [kvHeads, past + 1, headDim]. Linear layers are Gemm nodes with transB (the
// weights stay [out, in], as stored), rotary embedding uses rotate_half (Hugging Face's convention)
// with cos/sin tables gathered by position, and grouped-query attention reads each key/value head
// for its group of query heads without copies.
import {
  encodeOnnxModel,
  type OnnxInitializer,
  type OnnxNode,
  type OnnxValueInfo,
  Rng,
} from '@sparsekit/core';
import { UnsupportedModelError } from './errors.js';
import { paramsToHf } from './hf/names.js';
import { inverseFrequencies } from './rope.js';
import { sampleToken } from './runtime/generate.js';
import type { TransformerLM } from './runtime/model.js';
import { median, type Speed, type SpeedOptions } from './runtime/speed.js';

/** The graph's bytes and what a caller needs to feed it. */
export interface OnnxDecodeGraph {
  bytes: Uint8Array;
  layers: number;
  kvHeads: number;
  headDim: number;
  vocab: number;
  /** Positions the rotary tables cover (the model's maxPositions). */
  maxPositions: number;
}

/** Refuse what the graph does not build (a typed error naming the feature). */
function checkSupported(model: TransformerLM): void {
  const c = model.config;
  const refuse = (what: string) => {
    throw new UnsupportedModelError(`ONNX decode export of ${what}`, 'implemented: Llama-family decoders');
  };
  if (c.family !== 'llama') refuse(`family '${c.family}'`);
  if (c.norm !== 'rmsnorm' || !c.preNorm) refuse('norms other than pre-norm RMSNorm');
  if (c.positions !== 'rotary') refuse('learned positions');
  if (!c.gatedMlp || c.activation !== 'silu') refuse('MLPs other than SwiGLU');
  if (c.attentionBias || c.mlpBias) refuse('linear biases');
  if (c.slidingWindow !== undefined) refuse('sliding-window attention');
  if (c.normWidth !== undefined) refuse('folded or sliced norms');
  const blocks = model.params.blocks;
  if (blocks.some((b) => b.mlp.kind === 'moe')) refuse('mixture-of-experts blocks');
  if (blocks.some((b) => b.attentionShortcut !== undefined || b.mlpShortcut !== undefined))
    refuse('sliced (SliceGPT) blocks');
  if (model.params.projectIn !== undefined || model.params.projectOut !== undefined)
    refuse('embedding projections');
}

/** The decode step of `model` (its current weights, every linear layer written dense). */
export function llamaDecodeOnnx(model: TransformerLM): OnnxDecodeGraph {
  checkSupported(model);
  const c = model.config;
  const hf = paramsToHf(c, model.params);
  const nodes: OnnxNode[] = [];
  const initializers: OnnxInitializer[] = [];
  const weight = (name: string): string => {
    const t = hf.get(name);
    if (t === undefined)
      throw new UnsupportedModelError(`ONNX decode export without ${name}`, 'a Llama checkpoint');
    initializers.push({ name, dims: t[0], data: t[1] });
    return name;
  };
  const constant = (name: string, dims: number[], data: Float32Array | BigInt64Array): string => {
    initializers.push({ name, dims, data });
    return name;
  };
  let counter = 0;
  const op = (type: string, inputs: string[], attributes?: OnnxNode['attributes']): string => {
    const out = `t${counter++}`;
    nodes.push({ op: type, inputs, outputs: [out], ...(attributes === undefined ? {} : { attributes }) });
    return out;
  };
  const gemm = (x: string, w: string) => op('Gemm', [x, w], { transB: 1 });

  const { headDim: D, numHeads, numKvHeads: kv, vocabSize } = c;
  const group = numHeads / kv;
  const eps = constant('eps', [], new Float32Array([c.normEps]));
  const rms = (x: string, w: string) => {
    const mean = op('ReduceMean', [op('Mul', [x, x])], { axes: [-1], keepdims: 1 });
    return op('Mul', [op('Div', [x, op('Sqrt', [op('Add', [mean, eps])])]), w]);
  };

  // Rotary tables [maxPositions, D] (each half's frequencies repeated), and rotate_half as a
  // signed permutation matrix [D, D]: (x W)[i] = -x[i + D/2] for i < D/2, x[i - D/2] above.
  const half = D / 2;
  const inv = inverseFrequencies(D, c.ropeTheta, c.ropeScaling);
  const P = c.maxPositions;
  const cosTable = new Float32Array(P * D);
  const sinTable = new Float32Array(P * D);
  for (let p = 0; p < P; p++)
    for (let i = 0; i < half; i++) {
      const angle = Math.fround(p * inv[i]!);
      cosTable[p * D + i] = cosTable[p * D + i + half] = Math.cos(angle);
      sinTable[p * D + i] = sinTable[p * D + i + half] = Math.sin(angle);
    }
  const rotate = new Float32Array(D * D);
  for (let i = 0; i < half; i++) {
    rotate[(i + half) * D + i] = -1;
    rotate[i * D + i + half] = 1;
  }
  constant('rope_cos', [P, D], cosTable);
  constant('rope_sin', [P, D], sinTable);
  constant('rotate_half', [D, D], rotate);
  const cos = op('Gather', ['rope_cos', 'position']);
  const sin = op('Gather', ['rope_sin', 'position']);
  const rope = (x: string) =>
    op('Add', [op('Mul', [x, cos]), op('Mul', [op('MatMul', [x, 'rotate_half']), sin])]);
  const shape = (name: string, dims: number[]) =>
    constant(name, [dims.length], BigInt64Array.from(dims.map(BigInt)));
  shape('shape_q', [kv, group, D]);
  shape('shape_kv', [kv, 1, D]);
  shape('shape_row', [1, numHeads * D]); // the attention width (head_dim need not be hidden / heads)
  const scale = constant(
    'attention_scale',
    [],
    new Float32Array([c.unscaledAttention ? 1 : 1 / Math.sqrt(D)]),
  );

  const inputs: OnnxValueInfo[] = [
    { name: 'input_ids', type: 'i64', dims: [1] },
    { name: 'position', type: 'i64', dims: [1] },
  ];
  const outputs: OnnxValueInfo[] = [{ name: 'logits', type: 'f32', dims: [1, vocabSize] }];
  let x = op('Gather', [weight('model.embed_tokens.weight'), 'input_ids']);
  for (let l = 0; l < c.numLayers; l++) {
    const p = `model.layers.${l}.`;
    const h = rms(x, weight(`${p}input_layernorm.weight`));
    const q = rope(op('Reshape', [gemm(h, weight(`${p}self_attn.q_proj.weight`)), 'shape_q']));
    const k = rope(op('Reshape', [gemm(h, weight(`${p}self_attn.k_proj.weight`)), 'shape_kv']));
    const v = op('Reshape', [gemm(h, weight(`${p}self_attn.v_proj.weight`)), 'shape_kv']);
    const keys = `present_key.${l}`;
    const values = `present_value.${l}`;
    nodes.push({ op: 'Concat', inputs: [`past_key.${l}`, k], outputs: [keys], attributes: { axis: 1 } });
    nodes.push({ op: 'Concat', inputs: [`past_value.${l}`, v], outputs: [values], attributes: { axis: 1 } });
    for (const name of ['key', 'value']) {
      inputs.push({ name: `past_${name}.${l}`, type: 'f32', dims: [kv, 'past', D] });
      outputs.push({ name: `present_${name}.${l}`, type: 'f32', dims: [kv, 'total', D] });
    }
    // [kv, group, D] x [kv, D, total] -> scores [kv, group, total]; one query sees every position.
    const scores = op('Mul', [op('MatMul', [q, op('Transpose', [keys], { perm: [0, 2, 1] })]), scale]);
    const attended = op('MatMul', [op('Softmax', [scores], { axis: -1 }), values]);
    x = op('Add', [x, gemm(op('Reshape', [attended, 'shape_row']), weight(`${p}self_attn.o_proj.weight`))]);
    const m = rms(x, weight(`${p}post_attention_layernorm.weight`));
    const gate = gemm(m, weight(`${p}mlp.gate_proj.weight`));
    const up = gemm(m, weight(`${p}mlp.up_proj.weight`));
    const act = op('Mul', [op('Mul', [gate, op('Sigmoid', [gate])]), up]);
    x = op('Add', [x, gemm(act, weight(`${p}mlp.down_proj.weight`))]);
  }
  const final = rms(x, weight('model.norm.weight'));
  const head = c.tieEmbeddings ? 'model.embed_tokens.weight' : weight('lm_head.weight');
  nodes.push({ op: 'Gemm', inputs: [final, head], outputs: ['logits'], attributes: { transB: 1 } });
  const bytes = encodeOnnxModel({ name: 'decode', nodes, initializers, inputs, outputs });
  return { bytes, layers: c.numLayers, kvHeads: kv, headDim: D, vocab: vocabSize, maxPositions: P };
}

/** The part of onnxruntime-node (or onnxruntime-web) a decoder uses, passed in by the caller. */
export interface OnnxRuntimeLike {
  InferenceSession: {
    create(model: Uint8Array, options?: Record<string, unknown>): Promise<OnnxSessionLike>;
  };
  Tensor: new (
    type: 'float32' | 'int64',
    data: Float32Array | BigInt64Array,
    dims: readonly number[],
  ) => unknown;
}
export interface OnnxSessionLike {
  run(feeds: Record<string, unknown>): Promise<Record<string, { data: unknown; dims: readonly number[] }>>;
  release(): Promise<void>;
}

/** A decode loop over the graph in onnxruntime: one token per step, the cache kept between steps. */
export interface OnnxDecoder {
  /** Feed `token` at the next position; its logits [vocab]. */
  step(token: number): Promise<Float32Array>;
  /** Forget the cache (the next step is position 0). */
  reset(): void;
  release(): Promise<void>;
}

/** A session for `graph` on `ort` (sessionOptions as onnxruntime takes them, e.g. intraOpNumThreads). */
export async function createOnnxDecoder(
  ort: OnnxRuntimeLike,
  graph: OnnxDecodeGraph,
  sessionOptions: Record<string, unknown> = {},
): Promise<OnnxDecoder> {
  const session = await ort.InferenceSession.create(graph.bytes, sessionOptions);
  const { layers, kvHeads, headDim } = graph;
  let cache: Record<string, unknown> = {};
  let position = 0;
  const reset = () => {
    const empty = () => new ort.Tensor('float32', new Float32Array(0), [kvHeads, 0, headDim]);
    cache = {};
    for (let l = 0; l < layers; l++) {
      cache[`past_key.${l}`] = empty();
      cache[`past_value.${l}`] = empty();
    }
    position = 0;
  };
  reset();
  return {
    async step(token) {
      if (position >= graph.maxPositions)
        throw new UnsupportedModelError(
          `decoding past position ${graph.maxPositions}`,
          'the rotary tables end there',
        );
      const out = await session.run({
        input_ids: new ort.Tensor('int64', BigInt64Array.of(BigInt(token)), [1]),
        position: new ort.Tensor('int64', BigInt64Array.of(BigInt(position)), [1]),
        ...cache,
      });
      for (let l = 0; l < layers; l++) {
        cache[`past_key.${l}`] = out[`present_key.${l}`];
        cache[`past_value.${l}`] = out[`present_value.${l}`];
      }
      position++;
      return out.logits!.data as Float32Array;
    },
    reset,
    release: () => session.release(),
  };
}

/**
 * `generationSpeed` for a decoder in onnxruntime: the same prompt, greedy decoding and medians. The
 * graph takes one token per step, so its prefill is the prompt fed token by token.
 */
export async function onnxGenerationSpeed(
  decoder: OnnxDecoder,
  graph: OnnxDecodeGraph,
  options: SpeedOptions = {},
): Promise<Speed> {
  const promptLength = Math.min(options.promptLength ?? 64, graph.maxPositions - 1);
  const newTokens = Math.min(options.newTokens ?? 64, graph.maxPositions - promptLength);
  const reps = options.reps ?? 5;
  const prompt = Array.from({ length: promptLength }, (_, i) => (i * 37 + 11) % graph.vocab);
  const rng = new Rng(0);
  const run = async (maxNew: number) => {
    decoder.reset();
    let start = performance.now();
    let logits: Float32Array = new Float32Array(0);
    for (const t of prompt) logits = await decoder.step(t);
    const prefillSeconds = (performance.now() - start) / 1000;
    start = performance.now();
    let produced = 0;
    for (;;) {
      const next = sampleToken(logits, {}, rng);
      produced++;
      if (produced === maxNew) break;
      logits = await decoder.step(next);
    }
    const decodeSeconds = (performance.now() - start) / 1000;
    return {
      prefill: promptLength / prefillSeconds,
      decode: produced > 1 ? (produced - 1) / decodeSeconds : 0,
      first: prefillSeconds * 1000,
    };
  };
  await run(Math.min(4, newTokens));
  const runs = [];
  for (let r = 0; r < reps; r++) runs.push(await run(newTokens));
  return {
    prefillTokensPerSecond: median(runs.map((r) => r.prefill)),
    decodeTokensPerSecond: median(runs.map((r) => r.decode)),
    timeToFirstTokenMs: median(runs.map((r) => r.first)),
  };
}
