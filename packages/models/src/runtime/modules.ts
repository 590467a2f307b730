// The module tree of a TransformerLM: every parameter-holding piece under the runtime's Hugging
// Face-style names (Llama's layout: `layers.N.self_attn.q_proj`, `layers.N.mlp.experts.E.up_proj`).
import type { ModuleEntry } from '@sparsekit/core';
import { Linear } from './linear.js';
import { mlpExperts, mlpGroups } from './mlp.js';
import type { ModelParams, NormParams } from './params.js';

/** The modules of `p`, parents before children, in execution order. */
export function moduleTree(p: ModelParams): ModuleEntry[] {
  const out: ModuleEntry[] = [];
  const linear = (l: Linear | undefined) => {
    if (l !== undefined) out.push({ name: l.name, kind: 'linear', module: l });
  };
  const norm = (name: string, n: NormParams | undefined) => {
    if (n !== undefined) out.push({ name, kind: 'norm', module: n });
  };
  out.push({ name: 'embed_tokens', kind: 'embedding', module: p.embedTokens });
  if (p.embedPositions !== undefined)
    out.push({ name: 'embed_positions', kind: 'embedding', module: p.embedPositions });
  linear(p.projectIn);
  p.blocks.forEach((b, i) => {
    const n = `layers.${i}`;
    out.push({ name: n, kind: 'block', module: b });
    norm(`${n}.input_layernorm`, b.attentionNorm);
    out.push({ name: `${n}.self_attn`, kind: 'attention', module: b });
    for (const l of [b.q, b.k, b.v, b.o]) linear(l);
    linear(b.attentionShortcut);
    norm(`${n}.post_attention_layernorm`, b.mlpNorm);
    out.push({ name: `${n}.mlp`, kind: 'mlp', module: b.mlp });
    if (b.mlp.kind === 'moe') {
      linear(b.mlp.gate);
      out.push({ name: `${n}.mlp.router`, kind: 'router', module: b.mlp.router });
      const experts = mlpExperts(b.mlp);
      experts.forEach((e, k) => {
        const shared = b.mlp.kind === 'moe' && k === b.mlp.experts.length;
        out.push({
          name: shared ? `${n}.mlp.shared_expert` : `${n}.mlp.experts.${k}`,
          kind: 'expert',
          module: e,
        });
        for (const l of mlpGroups(e).flat()) linear(l);
      });
    } else for (const l of mlpGroups(b.mlp).flat()) linear(l);
    linear(b.mlpShortcut);
  });
  norm('norm', p.finalNorm);
  linear(p.projectOut);
  linear(p.lmHead);
  return out;
}

/** Parameters of the listed modules (a tied head, which shares the embeddings, counted once). */
export function countParameters(modules: readonly ModuleEntry[], tiedHead: boolean): number {
  let count = 0;
  for (const { name, kind, module } of modules) {
    if (kind === 'embedding') count += (module as Float32Array).length;
    else if (kind === 'norm') {
      const n = module as NormParams;
      count += n.weight.length + (n.bias?.length ?? 0);
    } else if (kind === 'linear' && !(tiedHead && name === 'lm_head')) {
      const l = module as Linear;
      count += l.inFeatures * l.outFeatures + (l.bias?.length ?? 0);
    }
  }
  return count;
}

/** The linear layers among `modules`. */
export function linearModules(modules: readonly ModuleEntry[]): Linear[] {
  return modules.filter((m) => m.module instanceof Linear).map((m) => m.module as Linear);
}
