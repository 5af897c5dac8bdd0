/**
 * The Hugging Face GPT2Config view of a ModelConfig: written as config.json next to
 * model.safetensors so that `GPT2LMHeadModel.from_pretrained(dir)` loads a checkpoint folder, and
 * read back (field names of transformers' configuration_gpt2.py) when loading base weights.
 */
import { z } from 'zod';
import { type ModelConfig } from '../model/config.js';

/** The fields of a config.json that matter here; others (dropouts, token ids, …) pass through. */
export const HfGpt2ConfigSchema = z.looseObject({
  model_type: z.string().optional(),
  vocab_size: z.number().int().positive().optional(),
  n_positions: z.number().int().positive().optional(),
  n_ctx: z.number().int().positive().optional(), // older configs
  n_embd: z.number().int().positive().optional(),
  n_layer: z.number().int().positive().optional(),
  n_head: z.number().int().positive().optional(),
  layer_norm_epsilon: z.number().positive().optional(),
  activation_function: z.string().optional(),
  tie_word_embeddings: z.boolean().optional(),
});

/** A parsed config.json. */
export type HfGpt2Config = z.infer<typeof HfGpt2ConfigSchema>;

/** The config.json written into every checkpoint (GPT2LMHeadModel, tied head, tanh GELU). */
export function buildHfConfig(c: ModelConfig): Record<string, unknown> {
  return {
    model_type: 'gpt2',
    architectures: ['GPT2LMHeadModel'],
    vocab_size: c.vocabSize,
    n_positions: c.nPositions,
    n_ctx: c.nPositions,
    n_embd: c.nEmbd,
    n_layer: c.nLayer,
    n_head: c.nHead,
    n_inner: null,
    layer_norm_epsilon: c.layerNormEps,
    activation_function: 'gelu_new',
    tie_word_embeddings: true,
    resid_pdrop: 0,
    embd_pdrop: 0,
    attn_pdrop: 0,
    initializer_range: 0.02,
    torch_dtype: 'float32',
  };
}

/**
 * The ModelConfig fields a config.json states (camel-cased), or a reason it cannot describe our
 * model (another model type, an activation other than the tanh GELU, an untied head).
 */
export function modelFieldsFromHfConfig(h: HfGpt2Config): { fields: Partial<ModelConfig> } | { problem: string } {
  if (h.model_type !== undefined && h.model_type !== 'gpt2') return { problem: `model_type is "${h.model_type}", only "gpt2" is supported` };
  if (h.activation_function !== undefined && h.activation_function !== 'gelu_new' && h.activation_function !== 'gelu_pytorch_tanh') {
    return { problem: `activation_function is "${h.activation_function}", only "gelu_new" (tanh GELU) is supported` };
  }
  if (h.tie_word_embeddings === false) return { problem: 'tie_word_embeddings is false, only a tied output head is supported' };
  const fields: Partial<ModelConfig> = {};
  if (h.vocab_size !== undefined) fields.vocabSize = h.vocab_size;
  const positions = h.n_positions ?? h.n_ctx;
  if (positions !== undefined) fields.nPositions = positions;
  if (h.n_embd !== undefined) fields.nEmbd = h.n_embd;
  if (h.n_layer !== undefined) fields.nLayer = h.n_layer;
  if (h.n_head !== undefined) fields.nHead = h.n_head;
  if (h.layer_norm_epsilon !== undefined) fields.layerNormEps = h.layer_norm_epsilon;
  return { fields };
}
