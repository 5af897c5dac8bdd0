/**
 * GPT-2 architecture hyper-parameters and the parameter table derived from them. Parameter names
 * and layouts match Hugging Face's GPT2LMHeadModel (Conv1D weights stored [in, out]), so loading a
 * Hugging Face `model.safetensors` is a name map (see hf-names.ts).
 */
import { z } from 'zod';

/** Model hyper-parameters (Hugging Face GPT2Config field meanings, camel-cased). */
export const ModelConfigSchema = z
  .strictObject({
    vocabSize: z.number().int().min(2).max(1_000_000), // V: token embedding rows (tied output head)
    nPositions: z.number().int().min(1).max(65_536), // maximum sequence length T (learned positions)
    nEmbd: z.number().int().min(1).max(65_536), // C: residual stream width
    nLayer: z.number().int().min(1).max(1_024), // transformer blocks
    nHead: z.number().int().min(1).max(1_024), // attention heads; nEmbd must be divisible by it
    layerNormEps: z.number().positive().max(1).default(1e-5), // LayerNorm epsilon (GPT-2: 1e-5)
  })
  .refine((c) => c.nEmbd % c.nHead === 0, { error: 'nEmbd must be divisible by nHead', path: ['nHead'] });

export type ModelConfig = z.infer<typeof ModelConfigSchema>;

/** Named model sizes; `gpt2` is the 124M Hugging Face model. */
export const MODEL_PRESETS = {
  /** Unit-test size (golden values, leak tests). */
  micro: { vocabSize: 258, nPositions: 32, nEmbd: 32, nLayer: 2, nHead: 4, layerNormEps: 1e-5 },
  /** The bundled base model: byte-level, small enough to pretrain on two CPU cores. */
  tiny: { vocabSize: 258, nPositions: 64, nEmbd: 96, nLayer: 4, nHead: 4, layerNormEps: 1e-5 },
  /** A larger byte-level model for benchmarks. */
  small: { vocabSize: 258, nPositions: 128, nEmbd: 256, nLayer: 6, nHead: 8, layerNormEps: 1e-5 },
  /** GPT-2 small (124M), the Hugging Face `gpt2` checkpoint's shape. */
  gpt2: { vocabSize: 50257, nPositions: 1024, nEmbd: 768, nLayer: 12, nHead: 12, layerNormEps: 1e-5 },
} as const satisfies Record<string, ModelConfig>;

export type ModelPreset = keyof typeof MODEL_PRESETS;

/** What a parameter is, for category-level choices (HFT) and weight-decay rules. */
export type ParamKind = 'embedding' | 'attention' | 'mlp' | 'norm';

/** One trainable tensor: its Hugging Face name, shape and category. */
export interface ParamSpec {
  readonly name: string;
  readonly shape: readonly number[];
  readonly kind: ParamKind;
  /** Block index for per-block tensors, -1 for embeddings and the final norm. */
  readonly layer: number;
}

/** The ordered parameter table of a GPT-2 model: the flat-vector layout used everywhere. */
export function paramSpecs(c: ModelConfig): ParamSpec[] {
  const C = c.nEmbd;
  const specs: ParamSpec[] = [
    { name: 'transformer.wte.weight', shape: [c.vocabSize, C], kind: 'embedding', layer: -1 },
    { name: 'transformer.wpe.weight', shape: [c.nPositions, C], kind: 'embedding', layer: -1 },
  ];
  for (let l = 0; l < c.nLayer; l++) {
    const p = `transformer.h.${l}`;
    specs.push(
      { name: `${p}.ln_1.weight`, shape: [C], kind: 'norm', layer: l },
      { name: `${p}.ln_1.bias`, shape: [C], kind: 'norm', layer: l },
      { name: `${p}.attn.c_attn.weight`, shape: [C, 3 * C], kind: 'attention', layer: l },
      { name: `${p}.attn.c_attn.bias`, shape: [3 * C], kind: 'attention', layer: l },
      { name: `${p}.attn.c_proj.weight`, shape: [C, C], kind: 'attention', layer: l },
      { name: `${p}.attn.c_proj.bias`, shape: [C], kind: 'attention', layer: l },
      { name: `${p}.ln_2.weight`, shape: [C], kind: 'norm', layer: l },
      { name: `${p}.ln_2.bias`, shape: [C], kind: 'norm', layer: l },
      { name: `${p}.mlp.c_fc.weight`, shape: [C, 4 * C], kind: 'mlp', layer: l },
      { name: `${p}.mlp.c_fc.bias`, shape: [4 * C], kind: 'mlp', layer: l },
      { name: `${p}.mlp.c_proj.weight`, shape: [4 * C, C], kind: 'mlp', layer: l },
      { name: `${p}.mlp.c_proj.bias`, shape: [C], kind: 'mlp', layer: l },
    );
  }
  specs.push({ name: 'transformer.ln_f.weight', shape: [C], kind: 'norm', layer: -1 }, { name: 'transformer.ln_f.bias', shape: [C], kind: 'norm', layer: -1 });
  return specs;
}

/** Total trainable parameters (the tied head counts once). */
export function countParams(c: ModelConfig): number {
  return paramSpecs(c).reduce((n, s) => n + s.shape.reduce((a, b) => a * b, 1), 0);
}

/**
 * Model FLOPs per trained token (forward + backward), the PaLM appendix-B convention used for MFU:
 * 6·N for the dense matmuls (N excluding position embeddings) plus 12·L·T·C for attention scores.
 */
export function trainFlopsPerToken(c: ModelConfig, seqLen: number): number {
  const n = countParams(c) - c.nPositions * c.nEmbd;
  return 6 * n + 12 * c.nLayer * seqLen * c.nEmbd;
}
