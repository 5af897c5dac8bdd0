/**
 * Optimizers on flat fp32 vectors: AdamW (decoupled weight decay, torch.optim.AdamW semantics) and
 * SGD with momentum (torch.optim.SGD, dampening 0, L2 weight decay). Each works on an index range
 * [lo, hi) so that a data-parallel owner updates only its shard (docs/architecture.md §3, step 6), and takes
 * an optional keep-mask: in maskMode "update" a masked entry's parameter and state are not touched
 * at all (the paper's Eq. 1 / Algorithm 1). The step count t is global (one per optimizer step), as
 * in torch, so bias correction is the same for every entry.
 */
import { z } from 'zod';
import { nativeHost } from '../native/host.js';

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
    const native = nativeHost();
    if (native !== undefined) {
      // The same loops compiled (trainer/native/gmt_ops.cc): bit-identical, branch-free, on the backend's threads.
      if (keep === undefined) native.fns.adamwDense(params, g, m, v, lo, hi, so, b1, b2, eps, decay, stepSize, bc2Sqrt, native.threads);
      else native.fns.adamwKeep(params, g, m, v, keep, lo, hi, so, b1, b2, eps, decay, stepSize, bc2Sqrt, native.threads);
    } else if (keep === undefined) adamwDense(params, g, m, v, lo, hi, so, b1, b2, eps, decay, stepSize, bc2Sqrt);
    else adamwKeep(params, g, m, v, keep, lo, hi, so, b1, b2, eps, decay, stepSize, bc2Sqrt);
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

// The AdamW loops, one per case so that V8 compiles each monomorphic and without the keep test
// (a shared loop with `keep !== undefined && …` measured ~1.3× slower at 124M entries). The
// arithmetic is the same expression in the same order in both (fp64, each moment rounded to fp32):
//   m' = fround(b1·m + (1 − b1)·g), v' = fround(b2·v + (1 − b2)·g·g),
//   p' = fround(p·decay) − stepSize·m' / (sqrt(v')/bc2Sqrt + eps), stored as fp32.

function adamwDense(
  params: Float32Array,
  g: Float32Array,
  m: Float32Array,
  v: Float32Array,
  lo: number,
  hi: number,
  so: number,
  b1: number,
  b2: number,
  eps: number,
  decay: number,
  stepSize: number,
  bc2Sqrt: number,
): void {
  const c1 = 1 - b1,
    c2 = 1 - b2;
  for (let i = lo; i < hi; i++) {
    const gi = g[i]!,
      j = i + so;
    const mi = Math.fround(b1 * m[j]! + c1 * gi);
    const vi = Math.fround(b2 * v[j]! + c2 * gi * gi);
    m[j] = mi;
    v[j] = vi;
    params[i] = Math.fround(params[i]! * decay) - (stepSize * mi) / (Math.sqrt(vi) / bc2Sqrt + eps);
  }
}

function adamwKeep(
  params: Float32Array,
  g: Float32Array,
  m: Float32Array,
  v: Float32Array,
  keep: Uint8Array,
  lo: number,
  hi: number,
  so: number,
  b1: number,
  b2: number,
  eps: number,
  decay: number,
  stepSize: number,
  bc2Sqrt: number,
): void {
  const c1 = 1 - b1,
    c2 = 1 - b2;
  for (let i = lo; i < hi; i++) {
    if (keep[i] === 0) continue;
    const gi = g[i]!,
      j = i + so;
    const mi = Math.fround(b1 * m[j]! + c1 * gi);
    const vi = Math.fround(b2 * v[j]! + c2 * gi * gi);
    m[j] = mi;
    v[j] = vi;
    params[i] = Math.fround(params[i]! * decay) - (stepSize * mi) / (Math.sqrt(vi) / bc2Sqrt + eps);
  }
}

/** A range of the flat vector under one GMT threshold: keep |g| bits > thresholdBits, plus ties (all, or the first tieQuota). */
export interface ThresholdRange {
  readonly lo: number;
  readonly hi: number;
  /** |g| as fp32 bits with the sign cleared (masking/radix-select.ts); 0x80000000 keeps nothing. */
  readonly thresholdBits: number;
  /** Ties (|g| bits == thresholdBits) kept in index order; undefined keeps them all. */
  readonly tieQuota: number | undefined;
}

/**
 * One AdamW step in maskMode "update" with GMT's keep rule evaluated inside the loop: entry i of a
 * range is updated iff the mask computeMaskInto (masking/mask.ts) would write for that range keeps
 * it, read straight from g's bits, so no mask is written or read (docs/native-backend.md). The
 * arithmetic is optimizerStep's with that keep-mask, so the fp32 bits are the same. State covers the
 * whole vector (index i). Increments state.step once; returns the kept count per range.
 */
export function adamwStepThreshold(
  hp: OptimizerParams,
  state: OptimizerState,
  params: Float32Array,
  g: Float32Array,
  lr: number,
  ranges: readonly ThresholdRange[],
): number[] {
  if (hp.kind !== 'adamw') throw new RangeError(`adamwStepThreshold: optimizer ${hp.kind}`);
  state.step += 1;
  const t = state.step;
  const b1 = hp.beta1,
    b2 = hp.beta2,
    eps = hp.eps;
  const decay = 1 - lr * hp.weightDecay;
  const stepSize = lr / (1 - b1 ** t);
  const bc2Sqrt = Math.sqrt(1 - b2 ** t);
  const u = new Uint32Array(g.buffer, g.byteOffset, g.length);
  // `exact`: the first tieQuota ties are kept. Up to the entry after the last of them the rule is
  // bits ≥ T, from there bits > T, i.e. bits ≥ T + 1: two pieces [lo, e) and [e, hi) with their limits.
  const pieces = ranges.map(({ lo, hi, thresholdBits: tb, tieQuota }) => {
    if (tieQuota === undefined) return [lo, hi, tb, hi, hi, tb] as const;
    let e = lo;
    if (tieQuota > 0) {
      let q = tieQuota;
      for (; e < hi; e++) {
        if ((u[e]! & 0x7fffffff) === tb && --q === 0) {
          e++;
          break;
        }
      }
    }
    return [lo, e, tb, e, hi, tb + 1] as const;
  });
  const native = nativeHost();
  if (native !== undefined) {
    const kept = native.fns.adamwThreshold(
      params,
      g,
      state.m,
      state.v,
      Float64Array.from(pieces.flat()),
      b1,
      b2,
      eps,
      decay,
      stepSize,
      bc2Sqrt,
      native.threads,
    );
    return pieces.map((_, r) => kept[2 * r]! + kept[2 * r + 1]!);
  }
  return pieces.map(
    ([lo1, hi1, lim1, lo2, hi2, lim2]) =>
      adamwFrom(params, g, u, state.m, state.v, lo1, hi1, lim1, b1, b2, eps, decay, stepSize, bc2Sqrt) +
      adamwFrom(params, g, u, state.m, state.v, lo2, hi2, lim2, b1, b2, eps, decay, stepSize, bc2Sqrt),
  );
}

/** adamwKeep's loop over [lo, hi) keeping entries whose |g| bits are ≥ lim; returns how many it kept. */
function adamwFrom(
  params: Float32Array,
  g: Float32Array,
  u: Uint32Array,
  m: Float32Array,
  v: Float32Array,
  lo: number,
  hi: number,
  lim: number,
  b1: number,
  b2: number,
  eps: number,
  decay: number,
  stepSize: number,
  bc2Sqrt: number,
): number {
  const c1 = 1 - b1,
    c2 = 1 - b2;
  let kept = 0;
  for (let i = lo; i < hi; i++) {
    if ((u[i]! & 0x7fffffff) < lim) continue;
    kept++;
    const gi = g[i]!;
    const mi = Math.fround(b1 * m[i]! + c1 * gi);
    const vi = Math.fround(b2 * v[i]! + c2 * gi * gi);
    m[i] = mi;
    v[i] = vi;
    params[i] = Math.fround(params[i]! * decay) - (stepSize * mi) / (Math.sqrt(vi) / bc2Sqrt + eps);
  }
  return kept;
}
