/** The `hft` baseline: per block one of each pair frozen, by seed (docs/architecture.md §2). */

import test from 'ava';
import { HFT_CATEGORIES, hftFrozenNames } from '../../../trainer/src/masking/index.js';

/** Hugging Face GPT-2 parameter names for `blocks` blocks. */
function gpt2Names(blocks: number): string[] {
  const names = ['transformer.wte.weight', 'transformer.wpe.weight'];
  for (let i = 0; i < blocks; i++) {
    for (const p of ['ln_1', 'attn.c_attn', 'attn.c_proj', 'ln_2', 'mlp.c_fc', 'mlp.c_proj']) {
      names.push(`transformer.h.${i}.${p}.weight`, `transformer.h.${i}.${p}.bias`);
    }
  }
  names.push('transformer.ln_f.weight', 'transformer.ln_f.bias', 'lm_head.weight');
  return names;
}

test('hft - per block exactly one member of each pair is frozen, with its bias', (t) => {
  const names = gpt2Names(12);
  for (const seed of [0, 1, 2, 12345]) {
    const frozen = new Set(hftFrozenNames(names, seed));
    t.is(frozen.size, 12 * 3 * 2);
    for (let i = 0; i < 12; i++) {
      for (const [a, b] of HFT_CATEGORIES) {
        const fa = frozen.has(`transformer.h.${i}.${a}.weight`);
        const fb = frozen.has(`transformer.h.${i}.${b}.weight`);
        t.true(fa !== fb, `block ${i} ${a}/${b}`);
        t.is(frozen.has(`transformer.h.${i}.${a}.bias`), fa);
        t.is(frozen.has(`transformer.h.${i}.${b}.bias`), fb);
      }
    }
    for (const keep of ['transformer.wte.weight', 'transformer.wpe.weight', 'transformer.ln_f.weight', 'transformer.ln_f.bias', 'lm_head.weight']) {
      t.false(frozen.has(keep), keep);
    }
  }
});

test('hft - deterministic by seed, different seeds differ, about half of each member frozen', (t) => {
  const names = gpt2Names(12);
  t.deepEqual(hftFrozenNames(names, 7), hftFrozenNames(names, 7));
  t.notDeepEqual(hftFrozenNames(names, 7), hftFrozenNames(names, 8));
  const firstMember = [0, 0, 0];
  let draws = 0;
  for (let seed = 0; seed < 100; seed++) {
    const frozen = new Set(hftFrozenNames(names, seed));
    for (let i = 0; i < 12; i++) {
      HFT_CATEGORIES.forEach(([a], c) => {
        if (frozen.has(`transformer.h.${i}.${a}.weight`)) firstMember[c]!++;
      });
      draws++;
    }
  }
  // 1200 fair draws per category: sd ≈ 17; ±10% (120) is a wide bound.
  for (const c of firstMember) t.true(Math.abs(c - draws / 2) < 120, `${c} of ${draws}`);
});

test('hft - frozen names keep input order; unknown names stay trainable', (t) => {
  const names = ['transformer.h.0.attn.bias', 'transformer.h.3.mlp.c_fc.bias', 'transformer.h.3.mlp.c_fc.weight', 'x'];
  const frozen = hftFrozenNames(names, 3);
  t.false(frozen.includes('transformer.h.0.attn.bias'));
  t.false(frozen.includes('x'));
  t.deepEqual(
    frozen,
    names.filter((n) => frozen.includes(n)),
  );
});
