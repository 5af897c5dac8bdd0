/**
 * Local driver of the radix-select state machine: all segments of a scope are in this process, so
 * "summing the histograms of all segments" is a local add (docs/architecture.md §3 step 3 with one rank).
 * The collective (issue 3) drives the same state machine with histograms exchanged over NATS.
 */

import { NON_FINITE_BITS, NonFiniteGradientError, findNonFinite } from './non-finite.js';
import {
  KEEP_NONE_BITS,
  advance,
  bitsToFloat,
  createSelectState,
  histogram,
  histogramAndCompact,
  passSpec,
  scaleAndHistogram,
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
 * that of the scaled values.
 */
export function selectThreshold(segments: Float32Array | readonly Float32Array[], k: number, names: SelectNames = {}, scale = 1): ThresholdSelection {
  const segs = segments instanceof Float32Array ? [segments] : segments;
  let n = 0;
  for (const s of segs) n += s.length;
  let state: RadixSelectState = createSelectState(n, k);
  if (k === 0 || k === n) {
    if (scale !== 1) {
      const f = Math.fround(scale); // no pass 1 here: scale on its own
      for (const s of segs) for (let i = 0; i < s.length; i++) s[i] = s[i]! * f;
    }
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
