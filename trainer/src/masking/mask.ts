/**
 * Gradient masks from a threshold: keep s ≥ T_k (ties all kept, the paper's rule) or exactly k
 * with ties broken by flat index (docs/architecture.md §2), per parameter tensor or over all of them
 * (maskScope "tensor" / "global"), plus the statistics the trainer logs and checkpoints.
 */

import { keepCount } from './keep-count.js';
import { selectThreshold, type ThresholdSelection } from './select-threshold.js';

/** `all`: keep every entry with s ≥ T_k (paper); `exact`: keep exactly k, lowest flat index first among ties. */
export type TieRule = 'all' | 'exact';

/** `tensor`: one threshold per parameter tensor (default); `global`: one over all trainable tensors. */
export type MaskScope = 'tensor' | 'global';

/** A parameter-shaped array with its Hugging Face name (flat, row-major). */
export interface NamedTensor {
  readonly name: string;
  readonly values: Float32Array;
}

/** Mask settings of a GMT step (docs/architecture.md §2). */
export interface MaskOptions {
  /** Fraction of entries dropped, r ∈ [0, 1). */
  readonly maskRatio: number;
  readonly scope: MaskScope;
  readonly tieRule: TieRule;
}

/** Per-tensor mask statistics. */
export interface TensorMaskStats {
  readonly name: string;
  readonly size: number;
  readonly kept: number;
  readonly keptRatio: number;
  /** T_k of the tensor's scope (shared by all tensors under the global scope). */
  readonly threshold: number;
}

/** Per-scope statistics: k wanted, what was kept, and the threshold counts. */
export interface ScopeMaskStats {
  /** The tensor name, or "global". */
  readonly scope: string;
  readonly size: number;
  readonly k: number;
  readonly kept: number;
  readonly threshold: number;
  readonly thresholdBits: number;
  readonly countAbove: number;
  readonly countEqual: number;
}

/** Masks aligned with the input tensors (1 = keep), with per-tensor, per-scope and overall stats. */
export interface MaskSet {
  readonly masks: readonly Uint8Array[];
  readonly tensors: readonly TensorMaskStats[];
  readonly scopes: readonly ScopeMaskStats[];
  readonly size: number;
  readonly kept: number;
  readonly keptRatio: number;
}

/**
 * Write the mask of one segment into `out` (1 = keep) and return how many entries it keeps:
 * s > T, plus s == T for all ties (tieQuota undefined) or for the first `tieQuota` of them.
 */
export function computeMaskInto(segment: Float32Array, thresholdBits: number, tieQuota: number | undefined, out: Uint8Array): number {
  if (out.length !== segment.length) throw new RangeError(`computeMask: mask of ${out.length} for ${segment.length} entries`);
  const u = new Uint32Array(segment.buffer, segment.byteOffset, segment.length);
  const n = u.length;
  const t = thresholdBits;
  let kept = 0;
  let i = 0;
  // Branch-free compares (a mispredicted branch per entry halves the speed at r = 0.5): for keys
  // x, t in [0, 2^31], (t − 1 − x) is negative iff x ≥ t, and (t − x) iff x > t; >>> 31 reads the sign.
  if (tieQuota === undefined) {
    for (; i < n; i++) {
      const m = (t - 1 - (u[i]! & 0x7fffffff)) >>> 31;
      out[i] = m;
      kept += m;
    }
    return kept;
  }
  let quota = tieQuota;
  // Ties are taken in index order until the quota is spent, then only s > T passes.
  for (; i < n && quota > 0; i++) {
    const x = u[i]! & 0x7fffffff;
    const m = x > t || (x === t && quota-- > 0) ? 1 : 0;
    out[i] = m;
    kept += m;
  }
  for (; i < n; i++) {
    const m = (t - (u[i]! & 0x7fffffff)) >>> 31;
    out[i] = m;
    kept += m;
  }
  return kept;
}

/** The mask (1 = keep) of one segment for threshold bits T and a tie quota (undefined: keep all ties). */
export function computeMask(segment: Float32Array, thresholdBits: number, tieQuota?: number): Uint8Array {
  const out = new Uint8Array(segment.length);
  computeMaskInto(segment, thresholdBits, tieQuota, out);
  return out;
}

/** Zero the masked entries of `grad` in place (maskMode "gradient", docs/architecture.md §2). */
export function applyMaskInPlace(grad: Float32Array, mask: Uint8Array): void {
  if (mask.length !== grad.length) throw new RangeError(`applyMask: mask of ${mask.length} for ${grad.length} entries`);
  // Branch-free on the bits: −1 is all ones (keep), −0 is none (zero the entry to +0).
  const u = new Uint32Array(grad.buffer, grad.byteOffset, grad.length);
  for (let i = 0; i < u.length; i++) u[i] = u[i]! & -mask[i]!;
}

/** Number of kept entries in a mask. */
export function countKept(mask: Uint8Array): number {
  let kept = 0;
  for (let i = 0; i < mask.length; i++) kept += mask[i]!;
  return kept;
}

/**
 * GMT masks for a list of named gradient tensors (s = |g|): per tensor or one global threshold,
 * k = ceil((1 − r)·n) per scope, the chosen tie rule. Throws NonFiniteGradientError on NaN/±Inf.
 */
export function computeMasks(tensors: readonly NamedTensor[], options: MaskOptions): MaskSet {
  const masks = tensors.map((t) => new Uint8Array(t.values.length));
  const kept = tensors.map(() => 0);
  const thresholds = tensors.map(() => 0);
  const scopes: ScopeMaskStats[] = [];
  const groups: number[][] = options.scope === 'global' ? [tensors.map((_, i) => i)] : tensors.map((_, i) => [i]);
  for (const group of groups) {
    const segs = group.map((i) => tensors[i]!.values);
    const names = group.map((i) => tensors[i]!.name);
    const scope = options.scope === 'global' ? 'global' : names[0]!;
    let size = 0;
    for (const s of segs) size += s.length;
    const sel = selectThreshold(segs, keepCount(size, options.maskRatio), { scope, names });
    let scopeKept = 0;
    group.forEach((i, j) => {
      const quota = options.tieRule === 'exact' ? sel.quotas[j]! : undefined;
      kept[i] = computeMaskInto(segs[j]!, sel.thresholdBits, quota, masks[i]!);
      thresholds[i] = sel.threshold;
      scopeKept += kept[i];
    });
    scopes.push(scopeStats(scope, sel, scopeKept));
  }
  return buildMaskSet(
    tensors.map((t) => ({ name: t.name, size: t.values.length })),
    masks,
    kept,
    thresholds,
    scopes,
  );
}

/** Scope statistics from a selection and the count actually kept. */
export function scopeStats(scope: string, sel: ThresholdSelection, kept: number): ScopeMaskStats {
  return {
    scope,
    size: sel.n,
    k: sel.k,
    kept,
    threshold: sel.threshold,
    thresholdBits: sel.thresholdBits,
    countAbove: sel.countAbove,
    countEqual: sel.countEqual,
  };
}

/** Assemble a MaskSet from per-tensor masks, kept counts and thresholds (shared with random masks). */
export function buildMaskSet(
  tensors: readonly { readonly name: string; readonly size: number }[],
  masks: readonly Uint8Array[],
  kept: readonly number[],
  thresholds: readonly number[],
  scopes: readonly ScopeMaskStats[],
): MaskSet {
  let size = 0;
  let total = 0;
  const stats = tensors.map((t, i) => {
    size += t.size;
    total += kept[i]!;
    return {
      name: t.name,
      size: t.size,
      kept: kept[i]!,
      keptRatio: t.size === 0 ? 1 : kept[i]! / t.size,
      threshold: thresholds[i]!,
    };
  });
  return { masks, tensors: stats, scopes, size, kept: total, keptRatio: size === 0 ? 1 : total / size };
}
