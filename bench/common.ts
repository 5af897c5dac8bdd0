/** Shared pieces of the benchmarks: a synthetic batch and a robust timer. */
import type { TokenBatch } from '../trainer/src/model/gpt2.js';
import { Rng } from '../trainer/src/rng.js';

/** A random token batch with every position a target (pretraining-like). */
export function randomBatch(vocab: number, B: number, T: number, seed = 1): TokenBatch & { tokens: number } {
  const rng = new Rng(seed);
  const inputs = new Int32Array(B * T).map(() => rng.nextInt(vocab));
  const targets = new Int32Array(B * T).map(() => rng.nextInt(vocab));
  return { inputs, targets, batchSize: B, seqLen: T, tokens: B * T };
}

/** Median of an array. */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}
