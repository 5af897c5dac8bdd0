/**
 * The canonical global L2 norm of Γ: fp64 sums of squares per NORM_BLOCK entries, then those
 * partials summed in index order. One process computes it over the whole vector; N owners compute
 * their blocks and exchange the partials — the same bits either way, because shard boundaries are
 * multiples of NORM_BLOCK (collective/shards.ts; docs/architecture.md §3: every rank must end
 * bit-identical, and equal to one process with accumulation N).
 */

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
