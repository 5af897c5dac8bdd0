/**
 * The `oneoff` baseline, One-off Drop (docs/architecture.md §2), applied once after SFT: per tensor, reset
 * the fraction r of delta parameters Θ′ − Θ₀ with the smallest |delta| to their pretrained values,
 * i.e. keep the k = ceil((1 − r)·n) largest |delta| with the same exact select and tie rule as GMT.
 * Option `dare` (DARE, Yu et al. 2024): drop each delta with probability r from a counter hash and
 * rescale the kept deltas by 1/(1 − r).
 */

import { deriveSeed, hash32, seedWords } from '../rng.js';
import { keepCount } from './keep-count.js';
import { computeMaskInto, type NamedTensor, type TieRule } from './mask.js';
import { assertFinite, selectThreshold } from './select-threshold.js';

/** One-off Drop settings; `seed` is required for `dare`. */
export interface OneOffOptions {
  readonly maskRatio: number;
  readonly method: 'magnitude' | 'dare';
  readonly tieRule?: TieRule;
  readonly seed?: number | bigint;
}

/** Per-tensor result statistics: deltas kept and, for `magnitude`, the |delta| threshold. */
export interface OneOffTensorStats {
  readonly name: string;
  readonly size: number;
  readonly kept: number;
  readonly keptRatio: number;
  readonly threshold: number | null;
}

/** New parameter arrays (aligned with the inputs) and statistics. */
export interface OneOffResult {
  readonly tensors: readonly NamedTensor[];
  readonly stats: readonly OneOffTensorStats[];
  readonly size: number;
  readonly kept: number;
  readonly keptRatio: number;
}

/** Apply One-off Drop to fine-tuned tensors against pretrained ones (same names, order and sizes). */
export function oneOffDrop(pretrained: readonly NamedTensor[], finetuned: readonly NamedTensor[], options: OneOffOptions): OneOffResult {
  if (pretrained.length !== finetuned.length) throw new RangeError('oneoff: tensor lists differ in length');
  if (options.method === 'dare' && options.seed === undefined) throw new RangeError('oneoff: dare needs a seed');
  const out: NamedTensor[] = [];
  const stats: OneOffTensorStats[] = [];
  let size = 0;
  let kept = 0;
  for (let t = 0; t < finetuned.length; t++) {
    const base = pretrained[t]!;
    const tuned = finetuned[t]!;
    if (base.name !== tuned.name || base.values.length !== tuned.values.length) {
      throw new RangeError(`oneoff: tensor ${t} is "${tuned.name}" (${tuned.values.length}) vs "${base.name}" (${base.values.length})`);
    }
    const p = base.values;
    const f = tuned.values;
    const n = f.length;
    const delta = new Float32Array(n);
    for (let i = 0; i < n; i++) delta[i] = f[i]! - p[i]!; // rounds to fp32 on store: IEEE f32 subtraction
    const values = new Float32Array(n);
    let tensorKept: number;
    let threshold: number | null = null;
    if (options.method === 'magnitude') {
      const sel = selectThreshold(delta, keepCount(n, options.maskRatio), { scope: tuned.name, names: [tuned.name] });
      const mask = new Uint8Array(n);
      tensorKept = computeMaskInto(delta, sel.thresholdBits, options.tieRule === 'exact' ? sel.quotas[0]! : undefined, mask);
      // Kept entries take Θ′ itself, not Θ₀ + delta, so that keeping never adds rounding.
      for (let i = 0; i < n; i++) values[i] = mask[i] === 1 ? f[i]! : p[i]!;
      threshold = sel.threshold;
    } else {
      assertFinite([delta], { scope: tuned.name, names: [tuned.name] });
      tensorKept = dareInto(p, f, delta, options.maskRatio, options.seed ?? 0, t, values);
    }
    out.push({ name: tuned.name, values });
    stats.push({ name: tuned.name, size: n, kept: tensorKept, keptRatio: n === 0 ? 1 : tensorKept / n, threshold });
    size += n;
    kept += tensorKept;
  }
  return { tensors: out, stats, size, kept, keptRatio: size === 0 ? 1 : kept / size };
}

/**
 * DARE: entry i is dropped iff hash32(words(seed, 'dare', tensorIndex), i) < floor(r·2^32), so the
 * drop probability is r to within 2^-32 and the choice is a pure function of (seed, tensor, index).
 */
function dareInto(
  p: Float32Array,
  f: Float32Array,
  delta: Float32Array,
  maskRatio: number,
  seed: number | bigint,
  tensorIndex: number,
  out: Float32Array,
): number {
  if (!(maskRatio >= 0 && maskRatio < 1)) throw new RangeError(`oneoff: maskRatio must be in [0, 1), got ${maskRatio}`);
  const [lo, hi] = seedWords(deriveSeed(seed, 'dare', tensorIndex));
  const cut = Math.floor(maskRatio * 4294967296);
  const keepProb = 1 - maskRatio;
  let kept = 0;
  for (let i = 0; i < f.length; i++) {
    if (hash32(lo, hi, i) < cut) {
      out[i] = p[i]!;
    } else {
      // Θ₀ + delta/(1 − r) in double, rounded once to fp32; r = 0 keeps Θ′ exactly.
      out[i] = cut === 0 ? f[i]! : p[i]! + delta[i]! / keepProb;
      kept++;
    }
  }
  return kept;
}
