/**
 * Optimizers on flat fp32 vectors: AdamW (decoupled weight decay, torch.optim.AdamW semantics) and
 * SGD with momentum (torch.optim.SGD, dampening 0, L2 weight decay). Each works on an index range
 * [lo, hi) so that a data-parallel owner updates only its shard (docs/architecture.md §3, step 6), and takes
 * an optional keep-mask: in maskMode "update" a masked entry's parameter and state are not touched
 * at all (the paper's Eq. 1 / Algorithm 1). The step count t is global (one per optimizer step), as
 * in torch, so bias correction is the same for every entry.
 */
import { z } from 'zod';

/** Optimizer hyper-parameters (fields of the trainer config). */
export const OptimizerParamsSchema = z.strictObject({
  kind: z.enum(['adamw', 'sgd']),
  beta1: z.number().min(0).lt(1),
  beta2: z.number().min(0).lt(1),
  eps: z.number().positive(),
  weightDecay: z.number().min(0),
  momentum: z.number().min(0).lt(1),
});
export type OptimizerParams = z.infer<typeof OptimizerParamsSchema>;

/** Optimizer state for a range of the flat vector: AdamW uses m and v, SGD uses m (momentum). */
export interface OptimizerState {
  /** Optimizer steps taken so far (t of the next step is step + 1). */
  step: number;
  /** First moment (AdamW) or momentum buffer (SGD). */
  readonly m: Float32Array;
  /** Second moment (AdamW); empty for SGD. */
  readonly v: Float32Array;
}

/** Fresh zero state for `size` entries. */
export function createOptimizerState(kind: OptimizerParams['kind'], size: number): OptimizerState {
  return { step: 0, m: new Float32Array(size), v: new Float32Array(kind === 'adamw' ? size : 0) };
}

/**
 * One optimizer step on params[lo, hi) with gradient g[lo, hi); state arrays are indexed from
 * `stateOffset` (0 when the state covers exactly this range). keep[i] = 0 skips entry i entirely.
 * Increments state.step. Elementwise maths in fp64, stored in fp32: identical on every rank.
 */
export function optimizerStep(
  hp: OptimizerParams,
  state: OptimizerState,
  params: Float32Array,
  g: Float32Array,
  lr: number,
  keep: Uint8Array | undefined,
  lo = 0,
  hi = params.length,
  stateOffset = lo,
): void {
  state.step += 1;
  const t = state.step;
  const { m, v } = state;
  const so = stateOffset - lo;
  if (hp.kind === 'adamw') {
    const b1 = hp.beta1,
      b2 = hp.beta2,
      eps = hp.eps;
    const decay = 1 - lr * hp.weightDecay;
    const stepSize = lr / (1 - b1 ** t);
    const bc2Sqrt = Math.sqrt(1 - b2 ** t);
    for (let i = lo; i < hi; i++) {
      if (keep !== undefined && keep[i] === 0) continue;
      const gi = g[i]!,
        j = i + so;
      const mi = Math.fround(b1 * m[j]! + (1 - b1) * gi);
      const vi = Math.fround(b2 * v[j]! + (1 - b2) * gi * gi);
      m[j] = mi;
      v[j] = vi;
      const p = Math.fround(params[i]! * decay);
      params[i] = p - (stepSize * mi) / (Math.sqrt(vi) / bc2Sqrt + eps);
    }
  } else {
    const mu = hp.momentum,
      wd = hp.weightDecay;
    for (let i = lo; i < hi; i++) {
      if (keep !== undefined && keep[i] === 0) continue;
      const p = params[i]!,
        j = i + so;
      const gi = wd !== 0 ? g[i]! + wd * p : g[i]!;
      if (mu !== 0) {
        const b = Math.fround(mu * m[j]! + gi);
        m[j] = b;
        params[i] = p - lr * b;
      } else {
        params[i] = p - lr * gi;
      }
    }
  }
}
