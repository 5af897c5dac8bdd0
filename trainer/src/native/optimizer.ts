/**
 * The AdamW loops of trainer/src/optim/optimizer.ts compiled into GMT's native library
 * (trainer/native/gmt_ops.cc, loaded with the native backend by trainer/src/model/native-ops.ts): the
 * same fp64 expressions, bit for bit, without branches and on the backend's threads. The optimizer
 * calls them when they are loaded and enabled, and its JavaScript loops otherwise.
 */

/** adamwDense/adamwKeep/adamwThreshold's trailing arguments: b1, b2, eps, decay, stepSize, bc2Sqrt, threads. */
type Tail = [b1: number, b2: number, eps: number, decay: number, stepSize: number, bc2Sqrt: number, threads: number];

/** The native functions (argument checks included: a bad one throws a TypeError/RangeError naming it). */
export interface NativeAdamw {
  adamwDense(params: Float32Array, g: Float32Array, m: Float32Array, v: Float32Array, lo: number, hi: number, so: number, ...tail: Tail): void;
  adamwKeep(params: Float32Array, g: Float32Array, m: Float32Array, v: Float32Array, keep: Uint8Array, lo: number, hi: number, so: number, ...tail: Tail): void;
  /** ranges: [lo, hi, lim] triples (state index = i); returns each range's kept count. */
  adamwThreshold(params: Float32Array, g: Float32Array, m: Float32Array, v: Float32Array, ranges: Float64Array, ...tail: Tail): number[];
}

let loaded: { fns: NativeAdamw; threads: number } | undefined;
let enabled = true;

/** Called by the loader of the native library (or with undefined when it is not loaded). */
export function setNativeAdamw(fns: NativeAdamw | undefined, threads: number): void {
  loaded = fns === undefined ? undefined : { fns, threads: Math.max(1, threads) };
}

/** Config `fusedKernels`: false keeps the JavaScript loops (same bits, slower). */
export function enableNativeAdamw(on: boolean): void {
  enabled = on;
}

/** The native AdamW functions and their thread count, when loaded and enabled. */
export function nativeAdamw(): { fns: NativeAdamw; threads: number } | undefined {
  return enabled ? loaded : undefined;
}
