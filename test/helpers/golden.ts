/** Access to the committed PyTorch/Hugging Face golden values (test/golden/, see its README). */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { ModelConfigSchema, type ModelConfig } from '../../trainer/src/model/config.js';
import { ParamLayout } from '../../trainer/src/model/params.js';
import { readSafetensors } from '../../trainer/src/model/safetensors.js';
import type { TokenBatch } from '../../trainer/src/model/gpt2.js';
import { repoPath } from './repo.js';

const Ints = z.array(z.array(z.number().int()));
const RunSchema = z.looseObject({ losses_before_step: z.array(z.number()), file: z.string() });
const GoldenSchema = z.looseObject({
  config: z.looseObject({
    vocab_size: z.number(),
    n_positions: z.number(),
    n_embd: z.number(),
    n_layer: z.number(),
    n_head: z.number(),
    layer_norm_epsilon: z.number(),
  }),
  data: z.looseObject({ A: z.looseObject({ input_ids: Ints, labels: Ints }), B: z.looseObject({ input_ids: Ints, labels: Ints }) }),
  forward: z.looseObject({ loss_A: z.number(), loss_B: z.number(), grad_norm_A: z.number() }),
  optimizers: z.looseObject({ adamw_wd0_clip1: RunSchema, 'adamw_wd0.1_clip1': RunSchema, 'sgd_momentum0.9': RunSchema }),
  lr_schedule: z.looseObject({}).catchall(z.unknown()),
  gmt: z.looseObject({
    update_tensor: RunSchema.extend({ kept_per_step: z.array(z.record(z.string(), z.number())) }),
    gradient_tensor: RunSchema.extend({ kept_per_step: z.array(z.record(z.string(), z.number())) }),
    update_global: RunSchema.extend({ kept_per_step: z.array(z.record(z.string(), z.number())) }),
  }),
});
export type Golden = z.infer<typeof GoldenSchema>;

/** The parsed golden.json. */
export const golden: Golden = GoldenSchema.parse(JSON.parse(readFileSync(repoPath('test/golden/data/golden.json'), 'utf-8')));

/** The golden model's architecture in our config terms. */
export const goldenModelConfig: ModelConfig = ModelConfigSchema.parse({
  vocabSize: golden.config.vocab_size,
  nPositions: golden.config.n_positions,
  nEmbd: golden.config.n_embd,
  nLayer: golden.config.n_layer,
  nHead: golden.config.n_head,
  layerNormEps: golden.config.layer_norm_epsilon,
});

/** Load a golden safetensors file into a flat vector of our layout (every tensor must be present). */
export async function goldenFlat(file: string, layout = new ParamLayout(goldenModelConfig)): Promise<Float32Array> {
  const st = await readSafetensors(repoPath('test/golden/data', file));
  const flat = new Float32Array(layout.size);
  for (const s of layout.slots) {
    const t = st.tensors.get(s.name);
    if (t === undefined) throw new Error(`${file}: missing ${s.name}`);
    if (t.shape.join(',') !== s.shape.join(',')) throw new Error(`${file}: ${s.name} shape ${t.shape.join(',')} vs ${s.shape.join(',')}`);
    flat.set(t.data, s.offset);
  }
  return flat;
}

/** A golden batch (HF labels convention) as our TokenBatch: targets[b,t] = labels[b,t+1] or −1. */
export function goldenBatch(which: 'A' | 'B'): TokenBatch {
  const { input_ids: ids, labels } = golden.data[which];
  const B = ids.length,
    T = ids[0]!.length;
  const inputs = new Int32Array(B * T),
    targets = new Int32Array(B * T).fill(-1);
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      inputs[b * T + t] = ids[b]![t]!;
      const next = t + 1 < T ? labels[b]![t + 1]! : -100;
      if (next !== -100) targets[b * T + t] = next;
    }
  }
  return { inputs, targets, batchSize: B, seqLen: T };
}
