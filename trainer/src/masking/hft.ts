/**
 * The `hft` baseline, Half Fine-Tuning (docs/architecture.md §2): half of the parameters are frozen at
 * category level, chosen once per run from a seed. For GPT-2 with Hugging Face names, per block:
 * one of the two attention matrices (attn.c_attn, attn.c_proj), one of the two feed-forward
 * matrices (mlp.c_fc, mlp.c_proj) and one of the two norms (ln_1, ln_2), each with its bias.
 * Embeddings (wte, wpe), ln_f and the tied output head stay trainable.
 */

import { deriveSeed, hash32, seedWords } from '../rng.js';

/** The three per-block categories and their two members (name stems after `transformer.h.{i}.`). */
export const HFT_CATEGORIES = [
  ['attn.c_attn', 'attn.c_proj'],
  ['mlp.c_fc', 'mlp.c_proj'],
  ['ln_1', 'ln_2'],
] as const;

const BLOCK_PARAM = /^transformer\.h\.(\d+)\.(attn\.c_attn|attn\.c_proj|mlp\.c_fc|mlp\.c_proj|ln_1|ln_2)\.(weight|bias)$/;

/** Which member (0 or 1) of category `category` is frozen in block `block` for this seed. */
export function hftFrozenMember(seed: number | bigint, block: number, category: number): 0 | 1 {
  const [lo, hi] = seedWords(deriveSeed(seed, 'hft', block, category));
  return (hash32(lo, hi, 0) & 1) as 0 | 1;
}

/** Names (in input order) of the parameters HFT freezes for this seed; all other names stay trainable. */
export function hftFrozenNames(names: readonly string[], seed: number | bigint): string[] {
  const frozen: string[] = [];
  for (const name of names) {
    const m = BLOCK_PARAM.exec(name);
    if (m === null) continue; // embeddings, ln_f, head and anything unknown stay trainable
    const block = Number(m[1]);
    const stem = m[2]!;
    const category = HFT_CATEGORIES.findIndex((pair) => (pair as readonly string[]).includes(stem));
    const pair = HFT_CATEGORIES[category]!;
    if (pair[hftFrozenMember(seed, block, category)] === stem) frozen.push(name);
  }
  return frozen;
}
