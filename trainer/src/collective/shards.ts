/**
 * How the flat parameter vector is split among ranks. Shard boundaries are multiples of NORM_BLOCK
 * so that the canonical gradient norm (update/norm.ts) gives the same bits whether one process
 * computes it or N owners compute their blocks and exchange the partials (docs/architecture.md §3:
 * every rank must end bit-identical, and equal to one process with accumulation N).
 */
import { NORM_BLOCK } from '../update/norm.js';

/** A half-open index range [lo, hi). */
export interface Range {
  readonly lo: number;
  readonly hi: number;
}

/** The contiguous shard of each rank: ⌊jP/N⌋ rounded down to NORM_BLOCK, the last ending at P. */
export function shardRanges(size: number, worldSize: number): Range[] {
  const bound = (j: number): number => (j >= worldSize ? size : Math.min(size, Math.floor(Math.floor((j * size) / worldSize) / NORM_BLOCK) * NORM_BLOCK));
  return Array.from({ length: worldSize }, (_, j) => ({ lo: bound(j), hi: bound(j + 1) }));
}
