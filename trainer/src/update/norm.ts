/**
 * The canonical global L2 norm of Γ: fp64 sums of squares per NORM_BLOCK entries, then those
 * partials summed in index order. One process computes it over the whole vector; N owners compute
 * their blocks and exchange the partials — the same bits either way, because shard boundaries are
 * multiples of NORM_BLOCK (collective/shards.ts; docs/architecture.md §3: every rank must end
 * bit-identical, and equal to one process with accumulation N).
 */

import { PASS1_SHIFT } from '../masking/radix-select.js';

/** Entries per norm partial; shard boundaries are multiples of it. */
export const NORM_BLOCK = 4096;

/** fp64 sums of squares of each NORM_BLOCK block inside [lo, hi) (lo block-aligned). */
export function blockSumSquares(v: Float32Array, lo = 0, hi = v.length): Float64Array {
  if (lo % NORM_BLOCK !== 0) throw new RangeError(`range start ${lo} is not a multiple of ${NORM_BLOCK}`);
  const out = new Float64Array(Math.ceil((hi - lo) / NORM_BLOCK));
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
): number {
  if (histograms.length !== segments.length) throw new RangeError(`${histograms.length} histograms for ${segments.length} segments`);
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
