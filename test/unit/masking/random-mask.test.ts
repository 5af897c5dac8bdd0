/** The `random` baseline: exactly k, pure in (seed, step, tensor, index), shardable, uniform. */

import test from 'ava';
import { Rng } from '../../../trainer/src/rng.js';
import {
  computeRandomMaskRange,
  computeRandomMasks,
  keepCount,
  randomKey,
  randomKeyWords,
  type RandomMaskOptions,
  type TensorSize,
} from '../../../trainer/src/masking/index.js';
import { concat, firstDiff } from './reference.js';

const TENSORS: readonly TensorSize[] = [
  { name: 'a', size: 1000 },
  { name: 'b', size: 1 },
  { name: 'c', size: 4099 },
  { name: 'd', size: 0 },
  { name: 'e', size: 257 },
];

/** Independent reference: sort (key desc, global flat index asc) and keep the first k. */
function referenceMask(sizes: readonly TensorSize[], tensorIndices: readonly number[], o: RandomMaskOptions): Uint8Array {
  const keys: number[] = [];
  for (const i of tensorIndices) {
    const words = randomKeyWords(o.seed, o.step, i);
    for (let j = 0; j < sizes[i]!.size; j++) keys.push(randomKey(words, j));
  }
  const order = keys.map((_, i) => i).sort((a, b) => keys[b]! - keys[a]! || a - b);
  const out = new Uint8Array(keys.length);
  const k = keepCount(keys.length, o.maskRatio);
  for (let r = 0; r < k; r++) out[order[r]!] = 1;
  return out;
}

for (const scope of ['tensor', 'global'] as const) {
  for (const maskRatio of [0, 0.1, 0.5, 0.99]) {
    test(`random mask - ${scope} scope r=${maskRatio}: exactly k, equal to the sort of keys`, (t) => {
      const o: RandomMaskOptions = { seed: 11, step: 3, maskRatio, scope };
      const set = computeRandomMasks(TENSORS, o);
      if (scope === 'tensor') {
        TENSORS.forEach((x, i) => {
          t.is(set.tensors[i]!.kept, keepCount(x.size, maskRatio), x.name);
          t.is(firstDiff(set.masks[i]!, referenceMask(TENSORS, [i], o)), -1, x.name);
        });
      } else {
        t.is(set.kept, keepCount(set.size, maskRatio));
        t.is(
          firstDiff(
            concat(set.masks),
            referenceMask(
              TENSORS,
              TENSORS.map((_, i) => i),
              o,
            ),
          ),
          -1,
        );
      }
    });
  }
}

test('random mask - identical across calls and equal to per-shard computation', (t) => {
  const rng = new Rng(77);
  for (const scope of ['tensor', 'global'] as const) {
    const o: RandomMaskOptions = { seed: 5n, step: 12, maskRatio: 0.4, scope };
    const a = computeRandomMasks(TENSORS, o);
    const b = computeRandomMasks(TENSORS, o);
    a.masks.forEach((m, i) => t.is(firstDiff(m, b.masks[i]!), -1));
    for (let trial = 0; trial < 20; trial++) {
      const i = rng.nextInt(TENSORS.length);
      const size = TENSORS[i]!.size;
      const s = rng.nextInt(size + 1);
      const e = s + rng.nextInt(size - s + 1);
      const shard = computeRandomMaskRange(TENSORS, o, i, s, e);
      t.is(firstDiff(shard, a.masks[i]!.subarray(s, e)), -1, `${scope} tensor ${i} [${s}, ${e})`);
    }
  }
  t.throws(() => computeRandomMaskRange(TENSORS, { seed: 1, step: 0, maskRatio: 0.5, scope: 'tensor' }, 0, 5, 2000), {
    instanceOf: RangeError,
  });
});

test('random mask - differs per step and per seed', (t) => {
  const o: RandomMaskOptions = { seed: 1, step: 0, maskRatio: 0.5, scope: 'tensor' };
  const m0 = computeRandomMasks(TENSORS, o).masks[2]!;
  const m1 = computeRandomMasks(TENSORS, { ...o, step: 1 }).masks[2]!;
  const m2 = computeRandomMasks(TENSORS, { ...o, seed: 2 }).masks[2]!;
  const agree = (x: Uint8Array, y: Uint8Array): number => x.reduce((a, v, i) => a + (v === y[i] ? 1 : 0), 0) / x.length;
  // Independent masks at r = 0.5 agree on about half of the entries.
  t.true(Math.abs(agree(m0, m1) - 0.5) < 0.05);
  t.true(Math.abs(agree(m0, m2) - 0.5) < 0.05);
});

test('random mask - roughly uniform over entries across steps', (t) => {
  const n = 1000;
  const steps = 200;
  const counts = new Uint32Array(n);
  for (let step = 0; step < steps; step++) {
    const m = computeRandomMasks([{ name: 'x', size: n }], { seed: 99, step, maskRatio: 0.5, scope: 'tensor' }).masks[0]!;
    for (let i = 0; i < n; i++) counts[i]! += m[i]!;
  }
  // Binomial(200, 0.5): sd ≈ 7.1; a ±45 band is over 6 sd, wide enough never to flake.
  t.true(
    counts.every((c) => c >= 55 && c <= 145),
    `min ${Math.min(...counts)} max ${Math.max(...counts)}`,
  );
  const firstHalf = counts.subarray(0, n / 2).reduce((a, b) => a + b, 0);
  t.true(Math.abs(firstHalf / (steps * n * 0.25) - 1) < 0.02);
});
