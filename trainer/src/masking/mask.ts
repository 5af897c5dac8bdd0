/**
 * Gradient masks from a threshold: keep s ≥ T_k (ties all kept, the paper's rule) or exactly k
 * with ties broken by flat index (docs/architecture.md §2), per parameter tensor or over all of them
 * (maskScope "tensor" / "global"), plus the statistics the trainer logs and checkpoints.
 */

import { keepCount } from './keep-count.js';
import { type SpeculativeCandidates, selectThreshold, type ThresholdSelection } from './select-threshold.js';

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

/** Per-tensor, per-scope and overall statistics of a step's masks. */
export interface MaskStats {
  readonly tensors: readonly TensorMaskStats[];
  readonly scopes: readonly ScopeMaskStats[];
  readonly size: number;
  readonly kept: number;
  readonly keptRatio: number;
}

/** Masks aligned with the input tensors (1 = keep), with per-tensor, per-scope and overall stats. */
export interface MaskSet extends MaskStats {
  readonly masks: readonly Uint8Array[];
}

/** What decides a tensor's mask: keep s > T, plus s == T for all ties (tieQuota undefined) or the first tieQuota. */
export interface TensorThreshold {
  /** Saliency bits of T_k of the tensor's scope (|g| as fp32 bits, sign cleared). */
  readonly thresholdBits: number;
  readonly threshold: number;
  readonly tieQuota: number | undefined;
}

/** The thresholds of a GMT step: one per tensor, and each scope's selection with its member tensors. */
export interface MaskThresholds {
  readonly tensors: readonly TensorThreshold[];
  readonly scopes: readonly { readonly scope: string; readonly members: readonly number[]; readonly selection: ThresholdSelection }[];
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
 * The masks are written into `into` (one array per tensor, every entry overwritten) when given.
 */
export function computeMasks(tensors: readonly NamedTensor[], options: MaskOptions, into?: readonly Uint8Array[]): MaskSet {
  if (into !== undefined && (into.length !== tensors.length || into.some((m, i) => m.length !== tensors[i]!.values.length))) {
    throw new RangeError(`computeMasks: ${into.length} output masks do not match the ${tensors.length} tensors' sizes`);
  }
  // `into` (e.g. subarrays of one flat keep-mask) saves allocating and zeroing a mask per tensor per step.
  const masks = into ?? tensors.map((t) => new Uint8Array(t.values.length));
  const th = selectMaskThresholds(tensors, options);
  const kept = th.tensors.map((x, i) => computeMaskInto(tensors[i]!.values, x.thresholdBits, x.tieQuota, masks[i]!));
  return { ...maskStats(tensors, th, kept), masks };
}

/**
 * The thresholds of GMT masks (s = |g|) without writing the masks: per tensor or one global scope,
 * k = ceil((1 − r)·n) per scope, tie quotas under the `exact` rule. Throws NonFiniteGradientError on
 * NaN/±Inf. With `scale` ≠ 1 every tensor is first multiplied in place by fround(scale) (global-norm
 * clipping), fused into the selection's first pass; the thresholds are those of the scaled values.
 * For a consumer that applies the rule itself (the optimizer's fused GMT loop, optim/optimizer.ts).
 * `pass1[i]`, when given, is tensor i's radix pass-1 histogram of the unscaled |g|, counted by the
 * caller (update/norm.ts canonicalNormAndHistograms), so the selection does not read Γ for it.
 */
export function selectMaskThresholds(
  tensors: readonly NamedTensor[],
  options: MaskOptions,
  scale = 1,
  pass1?: readonly Uint32Array[],
  pass2?: readonly (SpeculativeCandidates | undefined)[],
): MaskThresholds {
  if (pass1 !== undefined && pass1.length !== tensors.length) throw new RangeError(`${pass1.length} pass-1 histograms for ${tensors.length} tensors`);
  const out: TensorThreshold[] = [];
  const scopes: MaskThresholds['scopes'][number][] = [];
  const groups: number[][] = options.scope === 'global' ? [tensors.map((_, i) => i)] : tensors.map((_, i) => [i]);
  for (const members of groups) {
    const segs = members.map((i) => tensors[i]!.values);
    const names = members.map((i) => tensors[i]!.name);
    const scope = options.scope === 'global' ? 'global' : names[0]!;
    let size = 0;
    for (const s of segs) size += s.length;
    const hists = pass1 === undefined ? undefined : members.map((i) => pass1[i]!);
    const early = pass2 === undefined ? undefined : members.map((i) => pass2[i]);
    const selection = selectThreshold(segs, keepCount(size, options.maskRatio), { scope, names }, scale, hists, early);
    members.forEach((i, j) => {
      out[i] = {
        thresholdBits: selection.thresholdBits,
        threshold: selection.threshold,
        tieQuota: options.tieRule === 'exact' ? selection.quotas[j]! : undefined,
      };
    });
    scopes.push({ scope, members, selection });
  }
  return { tensors: out, scopes };
}

/** The statistics of masks with these thresholds that kept `kept[i]` entries of tensor i. */
export function maskStats(
  tensors: readonly { readonly name: string; readonly values: ArrayLike<number> }[],
  th: MaskThresholds,
  kept: readonly number[],
): MaskStats {
  const scopes = th.scopes.map((s) => {
    let scopeKept = 0;
    for (const i of s.members) scopeKept += kept[i]!;
    return scopeStats(s.scope, s.selection, scopeKept);
  });
  return buildMaskStats(
    tensors.map((t) => ({ name: t.name, size: t.values.length })),
    kept,
    th.tensors.map((x) => x.threshold),
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
  return { ...buildMaskStats(tensors, kept, thresholds, scopes), masks };
}

/** Mask statistics from per-tensor kept counts and thresholds. */
function buildMaskStats(
  tensors: readonly { readonly name: string; readonly size: number }[],
  kept: readonly number[],
  thresholds: readonly number[],
  scopes: readonly ScopeMaskStats[],
): MaskStats {
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
  return { tensors: stats, scopes, size, kept: total, keptRatio: size === 0 ? 1 : total / size };
}
