/**
 * The host-side loops over Γ compiled into GMT's native library (trainer/native/gmt_ops.cc, loaded
 * with the native backend by trainer/src/model/native-ops.ts): the AdamW loops of optim/optimizer.ts,
 * the norm's block sums and pass-1 histograms (update/norm.ts), the radix selection's compaction pass
 * (masking/radix-select.ts) and the clip's scaling (optim/clip.ts). Bit for bit the JavaScript results
 * (the same fp64 expressions in the same order, the same integer counts), on the backend's threads.
 * Each caller uses them when loaded and enabled, and its JavaScript loop otherwise.
 */

/** The AdamW functions' trailing arguments: b1, b2, eps, decay, stepSize, bc2Sqrt, threads. */
type Tail = [b1: number, b2: number, eps: number, decay: number, stepSize: number, bc2Sqrt: number, threads: number];

/** The native functions (argument checks included: a bad one throws a TypeError/RangeError naming it). */
export interface NativeHostFns {
  adamwDense(params: Float32Array, g: Float32Array, m: Float32Array, v: Float32Array, lo: number, hi: number, so: number, ...tail: Tail): void;
  adamwKeep(params: Float32Array, g: Float32Array, m: Float32Array, v: Float32Array, keep: Uint8Array, lo: number, hi: number, so: number, ...tail: Tail): void;
  /** ranges: [lo, hi, lim] triples (state index = i); returns each range's kept count. */
  adamwThreshold(params: Float32Array, g: Float32Array, m: Float32Array, v: Float32Array, ranges: Float64Array, ...tail: Tail): number[];
  /**
   * out[b] = Σ v[i]² (fp64, index order) over block b of [lo, hi); hist[j·bins + (|v[i]| bits >> shift)]
   * counts segment j's entries (segments: [offset, size] pairs, sorted, disjoint; hist overwritten).
   * Segment j's keys in bin speculative[j] (−1: none; an empty array: no segment) are copied out in
   * index order, candidates[offsets[j], offsets[j + 1]), and counted by (x >> shift2) & (bins2 − 1) in
   * hist2[j·bins2, (j + 1)·bins2).
   */
  blockSquares(
    v: Float32Array,
    lo: number,
    hi: number,
    block: number,
    out: Float64Array,
    segments: Float64Array,
    hist: Uint32Array,
    bins: number,
    shift: number,
    threads: number,
    speculative: Int32Array,
    shift2: number,
    bins2: number,
  ): { candidates: Uint32Array; offsets: Float64Array; hist2: Uint32Array } | undefined;
  /** v[i] = fround(v[i]·f) on [lo, hi). */
  scale(v: Float32Array, lo: number, hi: number, f: number, threads: number): void;
  /** The radix selection's compaction pass (histogramAndCompact, scaling by f ≠ 1 on the way); returns the match count. */
  compact(segment: Float32Array, f: number, shift: number, prefixShift: number, prefix: number, hist: Uint32Array, out: Uint32Array, threads: number): number;
  /** A later radix pass over compacted keys (radix-select histogram of a Uint32Array); hist overwritten. */
  keyHistogram(keys: Uint32Array, shift: number, prefixShift: number, prefix: number, hist: Uint32Array): void;
  /** [#keys > hi, #keys in [lo, hi]]. */
  countAboveAndIn(keys: Uint32Array, lo: number, hi: number): [number, number];
}

/** The loaded functions and the threads they use. */
export interface NativeHost {
  readonly fns: NativeHostFns;
  readonly threads: number;
}

let loaded: NativeHost | undefined;
let enabled = true;

/** Called by the loader of the native library (or with undefined when it is not loaded). */
export function setNativeHost(fns: NativeHostFns | undefined, threads: number): void {
  loaded = fns === undefined ? undefined : { fns, threads: Math.max(1, threads) };
}

/** Config `fusedKernels`: false keeps the JavaScript loops (same bits, slower). */
export function enableNativeHost(on: boolean): void {
  enabled = on;
}

/** The native functions and their thread count, when loaded and enabled. */
export function nativeHost(): NativeHost | undefined {
  return enabled ? loaded : undefined;
}
