/**
 * Per-epoch example order: epoch e visits examples in the permutation drawn by
 * `new Rng(deriveSeed(seed, 'shuffle', e)).shuffle([0..n−1])`. It depends on nothing else, so any
 * rank, and any resumed run, computes the same order.
 */

import { deriveSeed, Rng } from '../rng.js';

// Batches ask for the same epoch's order thousands of times; remember the last one (pure in effect).
let memo: { seed: bigint; epoch: number; n: number; order: readonly number[] } | undefined;

/** The order in which epoch `epoch` visits examples 0..n−1 (frozen; shared between callers). */
export function epochOrder(seed: number | bigint, epoch: number, n: number): readonly number[] {
  if (!Number.isInteger(epoch) || epoch < 0) throw new RangeError(`epoch must be a non-negative integer, got ${epoch}`);
  if (!Number.isInteger(n) || n < 0) throw new RangeError(`n must be a non-negative integer, got ${n}`);
  const s = BigInt(seed);
  if (memo !== undefined && memo.seed === s && memo.epoch === epoch && memo.n === n) return memo.order;
  const order = Object.freeze(new Rng(deriveSeed(s, 'shuffle', epoch)).shuffle(Array.from({ length: n }, (_, i) => i)));
  memo = { seed: s, epoch, n, order };
  return order;
}
