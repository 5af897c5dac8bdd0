/**
 * The canonical global L2 norm of Γ: fp64 sums of squares per NORM_BLOCK entries, then those
 * partials summed in index order. One process computes it over the whole vector; N owners compute
 * their blocks and exchange the partials — the same bits either way, because shard boundaries are
 * multiples of NORM_BLOCK (collective/shards.ts; docs/architecture.md §3: every rank must end
 * bit-identical, and equal to one process with accumulation N).
 */

import { PASS1_BINS, PASS1_SHIFT, PASS2_BINS, PASS2_SHIFT } from '../masking/radix-select.js';
import type { SpeculativeCandidates } from '../masking/select-threshold.js';
import { nativeHost } from '../native/host.js';

const NO_SEGMENTS = new Float64Array(0),
  NO_HISTOGRAM = new Uint32Array(0),
  NO_SPECULATION = new Int32Array(0);

/**
 * The radix selection's pass-2 candidates gathered speculatively in the norm's read of Γ: `found[j]`
 * holds segment j's keys (|g| bits) in pass-1 bin `bins[j]` (the bin its threshold fell in last step;
 * −1: none), in index order, with their pass-2 histogram. When this step's threshold lands in the same
 * bin, the selection needs no second read of Γ (masking/select-threshold.ts). Filled by the native path
 * only (found stays empty otherwise).
 */
export interface Pass2Speculation {
  readonly bins: Int32Array;
  readonly found: (SpeculativeCandidates | undefined)[];
}

/** Entries per norm partial; shard boundaries are multiples of it. */
export const NORM_BLOCK = 4096;

/** fp64 sums of squares of each NORM_BLOCK block inside [lo, hi) (lo block-aligned). */
export function blockSumSquares(v: Float32Array, lo = 0, hi = v.length): Float64Array {
  if (lo % NORM_BLOCK !== 0) throw new RangeError(`range start ${lo} is not a multiple of ${NORM_BLOCK}`);
  const out = new Float64Array(Math.ceil((hi - lo) / NORM_BLOCK));
  const native = nativeHost();
  if (native !== undefined) {
    // The same sums compiled (native/host.ts), blocks split among threads: the same bits.
    native.fns.blockSquares(
      v,
      lo,
      hi,
      NORM_BLOCK,
      out,
      NO_SEGMENTS,
      NO_HISTOGRAM,
      PASS1_BINS,
      PASS1_SHIFT,
      native.threads,
      NO_SPECULATION,
      PASS2_SHIFT,
      PASS2_BINS,
    );
    return out;
  }
  for (let b = 0; b < out.length; b++) {
    const s = lo + b * NORM_BLOCK,
      e = Math.min(hi, s + NORM_BLOCK);
    let acc = 0;
    for (let i = s; i < e; i++) {
      const x = v[i]!;
      acc += x * x;
    }
    out[b] = acc;
  }
  return out;
}

/** The global L2 norm from block partials listed in index order. */
export function normFromPartials(partials: readonly Float64Array[]): number {
  let s = 0;
  for (const p of partials) for (let i = 0; i < p.length; i++) s += p[i]!;
  return Math.sqrt(s);
}

/** The canonical global L2 norm of a whole vector (what the sharded protocol computes). */
export function canonicalNorm(v: Float32Array): number {
  return normFromPartials([blockSumSquares(v)]);
}

/**
 * canonicalNorm(v) (the same bits: each block's squares summed in index order, the blocks in order)
 * that also counts every segment's radix-select pass-1 histogram of |v| (masking/radix-select.ts:
 * bin (bits & 0x7fffffff) >>> PASS1_SHIFT) in the same read of v. Segments are [offset, offset + size) ranges
 * in increasing order inside v; `histograms[j]` (length ≥ PASS1_BINS, zeroed here) receives segment j's
 * counts. Entries outside every segment count towards the norm only.
 */
export function canonicalNormAndHistograms(
  v: Float32Array,
  segments: readonly { readonly offset: number; readonly size: number }[],
  histograms: readonly Uint32Array[],
  speculation?: Pass2Speculation,
): number {
  if (histograms.length !== segments.length) throw new RangeError(`${histograms.length} histograms for ${segments.length} segments`);
  if (speculation !== undefined) speculation.found.length = 0;
  const native = nativeHost();
  if (native !== undefined) return nativeNormAndHistograms(native, v, segments, histograms, speculation);
  const u = new Uint32Array(v.buffer, v.byteOffset, v.length);
  const n = v.length;
  let s = 0;
  let seg = 0;
  for (const h of histograms) h.fill(0);
  for (let b = 0; b < n; b += NORM_BLOCK) {
    const e = Math.min(n, b + NORM_BLOCK);
    let acc = 0;
    let i = b;
    while (i < e) {
      // Skip segments that end at or before i; the next one may start after i.
      while (seg < segments.length && segments[seg]!.offset + segments[seg]!.size <= i) seg++;
      const cur = segments[seg];
      if (cur === undefined || cur.offset >= e) {
        for (; i < e; i++) {
          const x = v[i]!;
          acc += x * x;
        }
        break;
      }
      if (cur.offset > i) {
        for (; i < cur.offset; i++) {
          const x = v[i]!;
          acc += x * x;
        }
      }
      const h = histograms[seg]!;
      const stop = Math.min(e, cur.offset + cur.size);
      for (; i < stop; i++) {
        const x = v[i]!;
        acc += x * x;
        h[(u[i]! & 0x7fffffff) >>> PASS1_SHIFT]!++;
      }
    }
    s += acc;
  }
  return Math.sqrt(s);
}

/** canonicalNormAndHistograms through the native block sums (the same bits: the blocks summed in order). */
function nativeNormAndHistograms(
  native: NonNullable<ReturnType<typeof nativeHost>>,
  v: Float32Array,
  segments: readonly { readonly offset: number; readonly size: number }[],
  histograms: readonly Uint32Array[],
  speculation: Pass2Speculation | undefined,
): number {
  const partials = new Float64Array(Math.ceil(v.length / NORM_BLOCK));
  const flat = new Uint32Array(segments.length * PASS1_BINS);
  if (speculation !== undefined && speculation.bins.length !== segments.length)
    throw new RangeError(`${speculation.bins.length} speculative bins for ${segments.length} segments`);
  const segs = Float64Array.from(segments.flatMap((s) => [s.offset, s.size]));
  const got = native.fns.blockSquares(
    v,
    0,
    v.length,
    NORM_BLOCK,
    partials,
    segs,
    flat,
    PASS1_BINS,
    PASS1_SHIFT,
    native.threads,
    speculation?.bins ?? NO_SPECULATION,
    PASS2_SHIFT,
    PASS2_BINS,
  );
  if (speculation !== undefined && got !== undefined) {
    speculation.bins.forEach((bin, j) => {
      speculation.found[j] =
        bin < 0
          ? undefined
          : {
              bin,
              candidates: got.candidates.subarray(got.offsets[j], got.offsets[j + 1]),
              histogram: got.hist2.subarray(j * PASS2_BINS, (j + 1) * PASS2_BINS),
            };
    });
  }
  histograms.forEach((h, j) => {
    h.fill(0);
    h.set(flat.subarray(j * PASS1_BINS, (j + 1) * PASS1_BINS));
  });
  return normFromPartials([partials]);
}
