/**
 * Fixed-shape batches for next-token training. For example b of length L ≤ T:
 *
 *   inputs[b, t]  = ids[t]                         for t < L, else padId
 *   targets[b, t] = lossMask[t+1] ? ids[t+1] : −1  for t + 1 < L, else −1
 *
 * so the model's output at position t is scored against the next token exactly where example.ts
 * marks that token as a target. Padding is at the end (right), which a causal model never attends
 * to from real positions.
 */

import type { Example } from './example.js';

/** Row-major [batchSize, seqLen] inputs and targets, with counts for loss normalisation and throughput. */
export interface Batch {
  /** [B*T] token ids; padId past each example's end. */
  readonly inputs: Int32Array;
  /** [B*T] next-token targets, −1 where no loss is taken. */
  readonly targets: Int32Array;
  readonly batchSize: number;
  readonly seqLen: number;
  /** Number of targets ≠ −1 (the loss denominator). */
  readonly lossTokens: number;
  /** Number of non-padding input positions. */
  readonly tokens: number;
}

/** Pack `examples` (each at most `seqLen` long) into one [examples.length, seqLen] batch. */
export function buildBatch(examples: readonly Example[], seqLen: number, padId: number): Batch {
  const B = examples.length;
  const T = seqLen;
  if (B === 0) throw new RangeError('buildBatch: no examples');
  const inputs = new Int32Array(B * T).fill(padId);
  const targets = new Int32Array(B * T).fill(-1);
  let lossTokens = 0;
  let tokens = 0;
  for (let b = 0; b < B; b++) {
    const { ids, lossMask } = examples[b]!;
    const L = ids.length;
    if (L > T) throw new RangeError(`buildBatch: example of ${L} tokens exceeds seqLen ${T}`);
    const row = b * T;
    inputs.set(ids, row);
    tokens += L;
    for (let t = 0; t + 1 < L; t++) {
      if (lossMask[t + 1] === 1) {
        targets[row + t] = ids[t + 1]!;
        lossTokens++;
      }
    }
  }
  return { inputs, targets, batchSize: B, seqLen: T, lossTokens, tokens };
}

/** Loss targets an example contributes to a batch: positions t ≥ 1 with lossMask[t] = 1. */
export function exampleLossTokens(example: Example): number {
  let n = 0;
  for (let t = 1; t < example.lossMask.length; t++) n += example.lossMask[t] === 1 ? 1 : 0;
  return n;
}
