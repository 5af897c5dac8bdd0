/**
 * Exact k-th largest saliency by radix select on the float bits (docs/architecture.md §2: "the threshold
 * is computed in O(n) … never by a full sort; it must equal what a full sort gives, ties
 * included"), written as a state machine so that one scope may be split into segments held by
 * different ranks (docs/architecture.md §3 step 3):
 *
 *   state = createSelectState(n, k)
 *   while (state.status === 'running') {
 *     spec = passSpec(state)
 *     hs = segments.map((s) => histogram(s, spec))   // one per segment, on its owner
 *     state = advance(state, sumHistograms(hs))       // integer sums: identical on every rank
 *   }
 *
 * Keys are 31-bit unsigned integers. For a saliency s = |g| the key is the float32 bit pattern with
 * the sign cleared: for non-negative IEEE floats the unsigned order of the bits is the order of the
 * values (denormals included, and −0 and +0 both become 0). Three passes fix the key 11/10/10 bits
 * at a time (bits 30..20, 19..10, 9..0; 2048 + 1024 + 1024 bins, the layout of the notes §1.3 and
 * RAFT's kRadix11bits); every pass after the first counts only keys whose higher bits match the
 * prefix chosen so far.
 */

import { nativeHost } from '../native/host.js';
import { NON_FINITE_BITS } from './non-finite.js';

/** Pass 1's digit is key >>> PASS1_SHIFT (its 2048 bins; other code counting pass-1 histograms uses it). */
export const PASS1_SHIFT = 20;

/** Bit layout of the passes: the digit of pass p is (key >>> shift) & (bins − 1). */
const PASSES: readonly { readonly shift: number; readonly bins: number }[] = [
  { shift: PASS1_SHIFT, bins: 2048 },
  { shift: 10, bins: 1024 },
  { shift: 0, bins: 1024 },
];

/** Bins of pass 1 (the length of its histograms). */
export const PASS1_BINS = PASSES[0]!.bins;

/** Pass 2's digit: (key >>> PASS2_SHIFT) & (PASS2_BINS − 1) (the norm's speculative candidates count it). */
export const PASS2_SHIFT = PASSES[1]!.shift;
export const PASS2_BINS = PASSES[1]!.bins;

/** Number of histogram passes a selection takes (when it does not finish early). */
export const SELECT_PASSES = PASSES.length;

/** Pass-1 bins at or above this hold Inf/NaN saliencies (exponent all ones). */
const NON_FINITE_BIN = NON_FINITE_BITS >>> PASS1_SHIFT;

/** thresholdBits meaning "keep nothing" (k = 0): above every 31-bit key. */
export const KEEP_NONE_BITS = 0x80000000;

/** What one pass counts: keys with (key >>> prefixShift) === prefix, binned by their next digit. */
export interface PassSpec {
  readonly pass: number;
  readonly shift: number;
  readonly bins: number;
  readonly prefixShift: number;
  readonly prefix: number;
}

/** A selection waiting for the summed histogram of its next pass. */
export interface RadixSelectRunning {
  readonly status: 'running';
  /** Keys in the whole scope (all segments). */
  readonly n: number;
  /** Rank of the wanted key in descending order (the k-th largest), 1 ≤ k ≤ n. */
  readonly k: number;
  /** Whether pass 1 rejects Inf/NaN saliencies (off for random keys, which use all 31 bits). */
  readonly checkNonFinite: boolean;
  /** Index of the next pass. */
  readonly pass: number;
  /** Key bits fixed so far, right-aligned (key >>> shift of the previous pass); 0 before pass 1. */
  readonly prefix: number;
  /** Rank of the wanted key among the keys with this prefix. */
  readonly need: number;
  /** Keys with this prefix: what the next summed histogram must add up to. */
  readonly candidates: number;
  /** Keys with a larger prefix (all of them are above the threshold). */
  readonly countAbove: number;
}

/** A finished selection: T_k's key bits, #keys > T_k and #keys == T_k over the scope. */
export interface RadixSelectDone {
  readonly status: 'done';
  readonly n: number;
  readonly k: number;
  /** Key of the k-th largest entry; KEEP_NONE_BITS when k = 0. */
  readonly thresholdBits: number;
  readonly countAbove: number;
  readonly countEqual: number;
  /** Bin of the last pass holding T_k: a segment's last histogram at this bin is its equal count. */
  readonly lastBin: number;
}

/** Pass 1 saw Inf/NaN saliencies: every rank sees the same count and skips the step alike. */
export interface RadixSelectNonFinite {
  readonly status: 'nonFinite';
  readonly n: number;
  readonly k: number;
  readonly nonFiniteCount: number;
}

/** The selection state machine (see the module comment for the loop). */
export type RadixSelectState = RadixSelectRunning | RadixSelectDone | RadixSelectNonFinite;

/** Start selecting the k-th largest of n keys; k = 0 (empty scope) is done at once, keeping none. */
export function createSelectState(n: number, k: number, options: { readonly checkNonFinite?: boolean } = {}): RadixSelectRunning | RadixSelectDone {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`radix select: bad size ${n}`);
  if (!Number.isSafeInteger(k) || k < 0 || k > n) throw new RangeError(`radix select: k=${k} not in [0, ${n}]`);
  if (k === 0) {
    return { status: 'done', n, k, thresholdBits: KEEP_NONE_BITS, countAbove: 0, countEqual: 0, lastBin: -1 };
  }
  return {
    status: 'running',
    n,
    k,
    checkNonFinite: options.checkNonFinite ?? true,
    pass: 0,
    prefix: 0,
    need: k,
    candidates: n,
    countAbove: 0,
  };
}

/** The bit range and prefix the next pass counts (identical on every rank for the same state). */
export function passSpec(state: RadixSelectRunning): PassSpec {
  const layout = PASSES[state.pass];
  if (layout === undefined) throw new RangeError(`radix select: no pass ${state.pass}`);
  const prefixShift = state.pass === 0 ? 31 : PASSES[state.pass - 1]!.shift;
  return { pass: state.pass, shift: layout.shift, bins: layout.bins, prefixShift, prefix: state.prefix };
}

/** Bit view of a segment: a Float32Array's bits (zero-copy) or keys already given as u32. */
function bitsOf(segment: Float32Array | Uint32Array): Uint32Array {
  return segment instanceof Uint32Array ? segment : new Uint32Array(segment.buffer, segment.byteOffset, segment.length);
}

/**
 * Integer counts of one segment's keys for one pass (length spec.bins). A Float32Array segment is
 * read as |g| (sign bit cleared, fusing the abs into the pass); a Uint32Array holds keys or saliency
 * bits. Segments must hold fewer than 2^32 entries so a u32 count cannot wrap.
 */
export function histogram(segment: Float32Array | Uint32Array, spec: PassSpec): Uint32Array {
  const u = bitsOf(segment);
  const h = new Uint32Array(spec.bins);
  const n = u.length;
  if (spec.pass === 0) {
    // Pass 1 sees every key. A plain loop measured faster in V8 than 2- or 4-way split histograms.
    for (let i = 0; i < n; i++) h[(u[i]! & 0x7fffffff) >>> PASS1_SHIFT]!++;
    return h;
  }
  const { shift, prefixShift, prefix } = spec;
  const native = n >= 4096 ? nativeHost() : undefined; // the same counts compiled (worth a call from a few thousand keys)
  if (native !== undefined) {
    native.fns.keyHistogram(u, shift, prefixShift, prefix, h);
    return h;
  }
  const mask = spec.bins - 1;
  for (let i = 0; i < n; i++) {
    const x = u[i]! & 0x7fffffff;
    if (x >>> prefixShift === prefix) h[(x >>> shift) & mask]!++;
  }
  return h;
}

/**
 * Pass 1 fused with global-norm clipping: multiplies every entry of the segment in place by
 * fround(factor) (the same fp32 product as optim/clip.ts scaleInPlace) and counts the scaled |g|, in one
 * read and write of the segment instead of a scaling pass followed by a counting pass.
 */
export function scaleAndHistogram(segment: Float32Array, spec: PassSpec, factor: number): Uint32Array {
  if (spec.pass !== 0) throw new RangeError('radix select: only pass 1 sees every entry to scale');
  const f = Math.fround(factor);
  const u = bitsOf(segment);
  const h = new Uint32Array(spec.bins);
  const n = u.length;
  for (let i = 0; i < n; i++) {
    segment[i] = segment[i]! * f;
    h[(u[i]! & 0x7fffffff) >>> PASS1_SHIFT]!++;
  }
  return h;
}

/**
 * Like histogram, and also copies the matching keys (sign cleared) out, so that later passes —
 * whose prefixes extend this one — run over the candidates only instead of the whole segment.
 * `expected` is the segment's count in the bin this prefix came from (its previous histogram at
 * spec.prefix & (bins − 1)); it sizes the copy exactly, and a mismatch throws.
 */
export function histogramAndCompact(
  segment: Float32Array | Uint32Array,
  spec: PassSpec,
  expected: number,
): { histogram: Uint32Array; candidates: Uint32Array } {
  if (spec.pass === 0) throw new RangeError('radix select: pass 1 has no prefix to compact on');
  if (segment instanceof Float32Array) {
    const native = nativeCompact(segment, spec, expected, 1);
    if (native !== undefined) return native;
  }
  return compactLoop(bitsOf(segment), undefined, 1, spec, expected);
}

/**
 * histogramAndCompact over a Float32Array segment that also multiplies every entry in place by
 * fround(factor) (the same fp32 product as optim/clip.ts scaleInPlace). The histogram and the
 * candidates are of the keys read before scaling (|g| unscaled): for a pass 1 counted on the unscaled
 * segment (update/norm.ts canonicalNormAndHistograms), with the clip applied on the way.
 */
export function scaleHistogramAndCompact(
  segment: Float32Array,
  spec: PassSpec,
  expected: number,
  factor: number,
): { histogram: Uint32Array; candidates: Uint32Array } {
  if (spec.pass === 0) throw new RangeError('radix select: pass 1 has no prefix to compact on');
  const f = Math.fround(factor);
  const native = nativeCompact(segment, spec, expected, f);
  if (native !== undefined) return native;
  return compactLoop(bitsOf(segment), segment, f, spec, expected);
}

/**
 * The JavaScript loop of both compactions: counts and copies out the keys of u matching spec's
 * prefix; with `scaled` (u's Float32Array view) every entry is multiplied in place by f after its key
 * is read.
 */
function compactLoop(
  u: Uint32Array,
  scaled: Float32Array | undefined,
  f: number,
  spec: PassSpec,
  expected: number,
): { histogram: Uint32Array; candidates: Uint32Array } {
  const h = new Uint32Array(spec.bins);
  const n = u.length;
  const { shift, prefixShift, prefix } = spec;
  const mask = spec.bins - 1;
  const cap = expected;
  const out = new Uint32Array(cap);
  let m = 0;
  for (let i = 0; i < n; i++) {
    const x = u[i]! & 0x7fffffff;
    if (scaled !== undefined) scaled[i] = scaled[i]! * f;
    if (x >>> prefixShift === prefix) {
      h[(x >>> shift) & mask]!++;
      // A guarded store into a fixed buffer: growing it in the loop measured 3x slower in V8.
      if (m < cap) out[m] = x;
      m++;
    }
  }
  if (m !== cap) throw new RangeError(`radix select: segment has ${m} candidates, expected ${cap}`);
  return { histogram: h, candidates: out };
}

/**
 * histogramAndCompact (f = 1) or scaleHistogramAndCompact (f = fround(factor)) through the native
 * library (native/host.ts: the same counts and candidates in index order, the segment split among
 * threads); undefined when it is not loaded.
 */
function nativeCompact(segment: Float32Array, spec: PassSpec, expected: number, f: number): { histogram: Uint32Array; candidates: Uint32Array } | undefined {
  const native = nativeHost();
  if (native === undefined) return undefined;
  const histogram = new Uint32Array(spec.bins);
  const candidates = new Uint32Array(expected);
  const m = native.fns.compact(segment, f, spec.shift, spec.prefixShift, spec.prefix, histogram, candidates, native.threads);
  if (m !== expected) throw new RangeError(`radix select: segment has ${m} candidates, expected ${expected}`);
  return { histogram, candidates };
}

/** Element-wise sum of segment histograms (exact as integers up to 2^53 in a Float64Array). */
export function sumHistograms(histograms: readonly ArrayLike<number>[], bins?: number): Float64Array {
  const len = bins ?? histograms[0]?.length ?? 0;
  const sum = new Float64Array(len);
  for (const h of histograms) {
    if (h.length !== len) throw new RangeError(`radix select: histogram of ${h.length} bins, expected ${len}`);
    for (let b = 0; b < len; b++) sum[b]! += h[b]!;
  }
  return sum;
}

/**
 * Feed the summed histogram of the pass `passSpec(state)` described; returns the next state.
 * Throws when the counts do not add up to the candidates (a segment missing or counted twice),
 * because a wrong sum would silently give a wrong threshold.
 */
export function advance(state: RadixSelectRunning, summed: ArrayLike<number>): RadixSelectState {
  const layout = PASSES[state.pass];
  if (layout === undefined) throw new RangeError(`radix select: no pass ${state.pass}`);
  const bins = layout.bins;
  if (summed.length !== bins) throw new RangeError(`radix select: ${summed.length} bins, expected ${bins}`);
  let total = 0;
  for (let b = 0; b < bins; b++) {
    const c = summed[b]!;
    if (!Number.isSafeInteger(c) || c < 0) throw new RangeError(`radix select: bad count ${c} in bin ${b}`);
    total += c;
  }
  if (total !== state.candidates) {
    throw new RangeError(
      `radix select: pass ${state.pass + 1} counted ${total} keys, expected ${state.candidates} ` + '(a segment is missing or counted twice)',
    );
  }
  if (state.pass === 0 && state.checkNonFinite) {
    let nonFinite = 0;
    for (let b = NON_FINITE_BIN; b < bins; b++) nonFinite += summed[b]!;
    if (nonFinite > 0) return { status: 'nonFinite', n: state.n, k: state.k, nonFiniteCount: nonFinite };
  }
  // Scan from the largest digit down until the wanted rank falls inside a bin.
  let above = 0;
  let bin = bins - 1;
  for (; bin > 0; bin--) {
    const c = summed[bin]!;
    if (above + c >= state.need) break;
    above += c;
  }
  const countAbove = state.countAbove + above;
  const need = state.need - above;
  const candidates = summed[bin]!;
  const prefix = state.prefix * bins + bin; // appends the digit: prefix = key >>> layout.shift
  if (state.pass + 1 === PASSES.length) {
    return { status: 'done', n: state.n, k: state.k, thresholdBits: prefix, countAbove, countEqual: candidates, lastBin: bin };
  }
  return { ...state, pass: state.pass + 1, prefix, need, candidates, countAbove };
}

/**
 * Tie quotas for the `exact` rule: segment j (in flat index order) keeps its first q_j entries equal
 * to T_k, q_j = min(e_j, max(0, q − Σ_{i<j} e_i)) with q = k − countAbove; equal to a stable sort
 * by (saliency desc, flat index asc) (notes §1.3 "Tie rule"). Integer-only, so every rank agrees.
 */
export function tieQuotas(k: number, countAbove: number, equalCounts: ArrayLike<number>): number[] {
  let left = k - countAbove;
  let total = 0;
  for (let j = 0; j < equalCounts.length; j++) total += equalCounts[j]!;
  if (left < 0 || left > total) {
    throw new RangeError(`tie quotas: need ${left} ties but segments hold ${total} (inconsistent counts)`);
  }
  const quotas: number[] = [];
  for (let j = 0; j < equalCounts.length; j++) {
    const q = Math.min(equalCounts[j]!, left);
    quotas.push(q);
    left -= q;
  }
  return quotas;
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** The float value of saliency bits (Infinity for KEEP_NONE_BITS: nothing reaches it). */
export function bitsToFloat(bits: number): number {
  if (bits >= KEEP_NONE_BITS) return Infinity;
  u32[0] = bits;
  return f32[0]!;
}

/** The saliency key of x: |fround(x)| as fp32 bits (the inverse of bitsToFloat on finite keys). */
export function keyOf(x: number): number {
  f32[0] = x;
  return u32[0]! & 0x7fffffff;
}
