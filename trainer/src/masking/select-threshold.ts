/**
 * Local driver of the radix-select state machine: all segments of a scope are in this process, so
 * "summing the histograms of all segments" is a local add (docs/architecture.md §3 step 3 with one rank).
 * The collective (issue 3) drives the same state machine with histograms exchanged over NATS.
 */

import { nativeHost } from '../native/host.js';
import { scaleInPlace } from '../optim/clip.js';
import { NON_FINITE_BITS, NonFiniteGradientError, findNonFinite } from './non-finite.js';
import {
  KEEP_NONE_BITS,
  advance,
  bitsToFloat,
  createSelectState,
  histogram,
  histogramAndCompact,
  keyOf,
  PASS1_SHIFT,
  passSpec,
  scaleAndHistogram,
  scaleHistogramAndCompact,
  type RadixSelectDone,
  type RadixSelectState,
  sumHistograms,
  tieQuotas,
} from './radix-select.js';

/** T_k of one scope and the counts both tie rules need (docs/architecture.md §2). */
export interface ThresholdSelection {
  readonly n: number;
  readonly k: number;
  /** Saliency bits of T_k (|g| as float32 bits, sign cleared); KEEP_NONE_BITS when k = 0. */
  readonly thresholdBits: number;
  /** T_k as a number (Infinity when k = 0). */
  readonly threshold: number;
  /** Entries with s > T_k. */
  readonly countAbove: number;
  /** Entries with s == T_k; the `all` tie rule keeps countAbove + countEqual ≥ k entries. */
  readonly countEqual: number;
  /** Entries equal to T_k in each segment, in segment (flat index) order. */
  readonly equalPerSegment: readonly number[];
  /** Ties each segment keeps under the `exact` rule (lowest flat index first); they sum to k − countAbove. */
  readonly quotas: readonly number[];
}

/** A segment's pass-2 candidates gathered in advance for pass-1 bin `bin` (update/norm.ts Pass2Speculation). */
export interface SpeculativeCandidates {
  readonly bin: number;
  readonly candidates: Uint32Array;
  /** Their pass-2 histogram, when counted already. */
  readonly histogram: Uint32Array | undefined;
}

/** Names used in a NonFiniteGradientError: the scope and each segment's tensor name. */
export interface SelectNames {
  readonly scope?: string;
  readonly names?: readonly string[];
}

/** Throws NonFiniteGradientError for the first NaN/±Inf across the segments (in flat order), if any. */
export function assertFinite(segments: readonly Float32Array[], names: SelectNames = {}): void {
  for (let j = 0; j < segments.length; j++) {
    const seg = segments[j]!;
    const index = findNonFinite(seg);
    if (index >= 0) {
      const tensor = names.names?.[j] ?? `segment ${j}`;
      throw new NonFiniteGradientError({ scope: names.scope ?? tensor, tensor, index, value: seg[index]! });
    }
  }
}

/**
 * The exact k-th largest |g| over a scope given as one array or several segments (in flat index
 * order), with countAbove, countEqual and per-segment tie quotas; equals a full sort, ties
 * included. Throws NonFiniteGradientError (naming scope, tensor, index) on any NaN or ±Inf.
 * With `scale` ≠ 1 every segment is first multiplied in place by fround(scale) (global-norm
 * clipping, optim/clip.ts scaleInPlace: the same fp32 bits), fused into pass 1; the selection is
 * that of the scaled values. `pass1`, when given, holds each segment's pass-1 histogram of the
 * unscaled |g| (counted elsewhere, e.g. in the norm's pass: update/norm.ts); see selectFromPass1.
 */
export function selectThreshold(
  segments: Float32Array | readonly Float32Array[],
  k: number,
  names: SelectNames = {},
  scale = 1,
  pass1?: readonly Uint32Array[],
  pass2?: readonly (SpeculativeCandidates | undefined)[],
): ThresholdSelection {
  const segs = segments instanceof Float32Array ? [segments] : segments;
  let n = 0;
  for (const s of segs) n += s.length;
  if (pass1 !== undefined && k !== 0 && k !== n) return selectFromPass1(segs, n, k, names, scale, pass1, pass2);
  let state: RadixSelectState = createSelectState(n, k);
  if (k === 0 || k === n) {
    for (const s of segs) scaleInPlace(s, scale); // no pass 1 here: scale on its own
    // No passes needed: keep nothing, or keep everything (T_k = the minimum, one fused scan).
    return k === 0 ? keepNone(segs, n, names) : keepAll(segs, n, names);
  }
  let inputs: readonly (Float32Array | Uint32Array)[] = segs;
  let last: readonly Uint32Array[] = [];
  while (state.status === 'running') {
    const spec = passSpec(state);
    if (spec.pass === 0 && scale !== 1) {
      last = segs.map((s) => scaleAndHistogram(s, spec, scale));
    } else if (spec.pass === 1) {
      // Copy out the pass-1 bin's candidates so the remaining passes touch only them.
      const prev = last;
      const parts = inputs.map((s, j) => histogramAndCompact(s, spec, prev[j]![spec.prefix]!));
      inputs = parts.map((p) => p.candidates);
      last = parts.map((p) => p.histogram);
    } else {
      last = inputs.map((s) => histogram(s, spec));
    }
    state = advance(state, sumHistograms(last, spec.bins));
  }
  if (state.status === 'nonFinite') {
    assertFinite(segs, names);
    throw new RangeError('radix select: histogram reported non-finite values that no scan found');
  }
  return selectionFromDone(state, last);
}

/** Bits of fround(x · f) for the saliency bits x (f = fround(clip scale) > 0): monotone non-decreasing in x. */
function scaledBits(x: number, f: number): number {
  return keyOf(bitsToFloat(x) * f);
}

/** Largest finite saliency key (float32 max). */
const MAX_FINITE_KEY = NON_FINITE_BITS - 1;

/**
 * selectThreshold with pass 1 already counted on the unscaled |g| (`pass1[j]`: segment j's 2048-bin
 * histogram) and the clip scale applied during pass 2, which reads every entry anyway. The radix
 * select runs on the unscaled keys x and finds T_x, their k-th largest. Scaling y = fround(x·f) is
 * monotone non-decreasing, so the k-th largest scaled value is T_y = fround(T_x·f) exactly (sorting
 * x sorts y); but several x may round to one y, so the counts of the scaled values (#y > T_y,
 * #y == T_y per segment, which the tie rules need) are those of x above, and inside, the preimage
 * [L, U] of T_y. When [L, U] lies in T_x's pass-1 bin — all but a rare straddle of a bin edge — the
 * counts come from the pass-1 histograms and the pass-2 candidates (the keys of that bin); otherwise
 * they are counted on the scaled segments. Same result as selectThreshold(segs, k, names, scale)
 * (test/unit/masking/select.test.ts).
 */
function selectFromPass1(
  segs: readonly Float32Array[],
  n: number,
  k: number,
  names: SelectNames,
  scale: number,
  pass1: readonly Uint32Array[],
  pass2: readonly (SpeculativeCandidates | undefined)[] | undefined,
): ThresholdSelection {
  if (pass1.length !== segs.length) throw new RangeError(`radix select: ${pass1.length} pass-1 histograms for ${segs.length} segments`);
  const f = Math.fround(scale);
  let state: RadixSelectState = createSelectState(n, k);
  if (state.status !== 'running') throw new RangeError('radix select: k = 0 or n needs no passes');
  state = advance(state, sumHistograms(pass1, passSpec(state).bins));
  if (state.status !== 'running') {
    // Non-finite keys (pass 1 is the only pass that can say so): name the first bad entry.
    assertFinite(segs, names);
    throw new RangeError('radix select: histogram reported non-finite values that no scan found');
  }
  const bin1 = state.prefix; // T_x's pass-1 bin
  const spec2 = passSpec(state);
  const parts = segs.map((s, j) => {
    const early = pass2?.[j];
    if (early === undefined || early.bin !== bin1)
      return f === 1 ? histogramAndCompact(s, spec2, pass1[j]![bin1]!) : scaleHistogramAndCompact(s, spec2, pass1[j]![bin1]!, f);
    // The candidates were gathered in the norm's read of Γ: the second read only scales, as pass 2 would.
    if (early.candidates.length !== pass1[j]![bin1]!)
      throw new RangeError(`radix select: ${early.candidates.length} speculative candidates, expected ${pass1[j]![bin1]!}`);
    scaleInPlace(s, f);
    return { histogram: early.histogram ?? histogram(early.candidates, spec2), candidates: early.candidates };
  });
  const candidates = parts.map((p) => p.candidates);
  let last: readonly Uint32Array[] = parts.map((p) => p.histogram);
  state = advance(state, sumHistograms(last, spec2.bins));
  while (state.status === 'running') {
    const spec = passSpec(state);
    last = candidates.map((c) => histogram(c, spec));
    state = advance(state, sumHistograms(last, spec.bins));
  }
  if (state.status !== 'done') throw new RangeError('radix select: non-finite keys after pass 1');
  if (f === 1) return selectionFromDone(state, last); // y = x: nothing merges
  const tx = state.thresholdBits;
  const ty = scaledBits(tx, f);
  // The preimage [L, U] of T_y: binary searches on the monotone map.
  let lo = 0,
    hi = tx; // smallest key with scaledBits ≥ ty lies in [0, tx]
  while (lo < hi) {
    const mid = lo + Math.floor((hi - lo) / 2);
    if (scaledBits(mid, f) >= ty) hi = mid;
    else lo = mid + 1;
  }
  const L = lo;
  lo = tx;
  hi = MAX_FINITE_KEY; // largest key with scaledBits ≤ ty lies in [tx, max]
  while (lo < hi) {
    const mid = lo + Math.ceil((hi - lo) / 2);
    if (scaledBits(mid, f) <= ty) lo = mid;
    else hi = mid - 1;
  }
  const U = lo;
  const above: number[] = [];
  const equal: number[] = [];
  if (L >>> PASS1_SHIFT === bin1 && U >>> PASS1_SHIFT === bin1) {
    for (let j = 0; j < segs.length; j++) {
      const h = pass1[j]!;
      let a = 0;
      for (let b = bin1 + 1; b < h.length; b++) a += h[b]!;
      let e = 0;
      const c = candidates[j]!;
      const native = c.length >= 4096 ? nativeHost() : undefined;
      if (native !== undefined) {
        const [above, inside] = native.fns.countAboveAndIn(c, L, U);
        a += above;
        e = inside;
      } else {
        for (let i = 0; i < c.length; i++) {
          const x = c[i]!;
          if (x > U) a++;
          else if (x >= L) e++;
        }
      }
      above.push(a);
      equal.push(e);
    }
  } else {
    // The preimage straddles a pass-1 bin edge: count the scaled values themselves.
    for (const s of segs) {
      const u = new Uint32Array(s.buffer, s.byteOffset, s.length);
      let a = 0,
        e = 0;
      for (let i = 0; i < u.length; i++) {
        const y = u[i]! & 0x7fffffff;
        if (y > ty) a++;
        else if (y === ty) e++;
      }
      above.push(a);
      equal.push(e);
    }
  }
  let countAbove = 0,
    countEqual = 0;
  for (let j = 0; j < segs.length; j++) {
    countAbove += above[j]!;
    countEqual += equal[j]!;
  }
  if (!(countAbove < k && k <= countAbove + countEqual)) {
    throw new RangeError(`radix select: scaled counts ${countAbove} above, ${countEqual} equal do not hold the ${k}-th largest`);
  }
  return {
    n,
    k,
    thresholdBits: ty,
    threshold: bitsToFloat(ty),
    countAbove,
    countEqual,
    equalPerSegment: equal,
    quotas: tieQuotas(k, countAbove, equal),
  };
}

/** The selection a finished state machine describes, with per-segment tie counts from the last pass's histograms. */
export function selectionFromDone(state: RadixSelectDone, lastHistograms: readonly ArrayLike<number>[]): ThresholdSelection {
  const lastBin = state.lastBin;
  const equalPerSegment = lastHistograms.map((h) => (lastBin < 0 ? 0 : h[lastBin]!));
  return {
    n: state.n,
    k: state.k,
    thresholdBits: state.thresholdBits,
    threshold: bitsToFloat(state.thresholdBits),
    countAbove: state.countAbove,
    countEqual: state.countEqual,
    equalPerSegment,
    quotas: tieQuotas(state.k, state.countAbove, equalPerSegment),
  };
}

function keepNone(segs: readonly Float32Array[], n: number, names: SelectNames): ThresholdSelection {
  assertFinite(segs, names);
  const zeros = segs.map(() => 0);
  return {
    n,
    k: 0,
    thresholdBits: KEEP_NONE_BITS,
    threshold: Infinity,
    countAbove: 0,
    countEqual: 0,
    equalPerSegment: zeros,
    quotas: zeros,
  };
}

function keepAll(segs: readonly Float32Array[], n: number, names: SelectNames): ThresholdSelection {
  let min = 0x7fffffff;
  const mins: number[] = [];
  const counts: number[] = [];
  for (const seg of segs) {
    const u = new Uint32Array(seg.buffer, seg.byteOffset, seg.length);
    let segMin = 0x7fffffff;
    let segMax = 0;
    let count = 0;
    for (let i = 0; i < u.length; i++) {
      const x = u[i]! & 0x7fffffff;
      if (x < segMin) {
        segMin = x;
        count = 1;
      } else if (x === segMin) count++;
      if (x > segMax) segMax = x;
    }
    if (segMax >= NON_FINITE_BITS) assertFinite(segs, names);
    mins.push(segMin);
    counts.push(count);
    if (segMin < min) min = segMin;
  }
  const equalPerSegment = counts.map((c, j) => (mins[j] === min ? c : 0));
  let countEqual = 0;
  for (const e of equalPerSegment) countEqual += e;
  return {
    n,
    k: n,
    thresholdBits: min,
    threshold: bitsToFloat(min),
    countAbove: n - countEqual,
    countEqual,
    equalPerSegment,
    quotas: equalPerSegment,
  };
}
