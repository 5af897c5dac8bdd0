/**
 * Test fixtures for masking: an independent full-sort reference (no radix, no bit tricks) and
 * builders of random and adversarial tensors from the seeded Rng (never Math.random).
 */

import { Rng } from '../../../trainer/src/rng.js';

/** What a full sort says: T_k, counts, and both tie rules' masks. */
export interface Reference {
  readonly threshold: number;
  readonly countAbove: number;
  readonly countEqual: number;
  /** s ≥ T_k (paper: ties all kept). */
  readonly keepAll: Uint8Array;
  /** The first k of a stable sort by (s desc, index asc). */
  readonly keepExact: Uint8Array;
}

/** Sorted order of |values| descending, ties by index ascending (compute once, reuse for many k). */
export function sortedOrder(values: ArrayLike<number>): { abs: Float64Array; order: number[] } {
  // Math.abs of a float32 value is exact in double, and double order equals float32 order.
  const abs = Float64Array.from({ length: values.length }, (_, i) => Math.abs(values[i]!));
  const order = Array.from({ length: values.length }, (_, i) => i);
  order.sort((a, b) => abs[b]! - abs[a]! || a - b);
  return { abs, order };
}

/** The full-sort reference for keeping k entries of `values` by |value|. */
export function reference(values: ArrayLike<number>, k: number, sorted = sortedOrder(values)): Reference {
  const { abs, order } = sorted;
  const n = abs.length;
  const threshold = k === 0 ? Infinity : abs[order[k - 1]!]!;
  const keepAll = new Uint8Array(n);
  const keepExact = new Uint8Array(n);
  let countAbove = 0;
  let countEqual = 0;
  for (let i = 0; i < n; i++) {
    if (abs[i]! > threshold) countAbove++;
    if (abs[i]! === threshold) countEqual++;
    keepAll[i] = abs[i]! >= threshold ? 1 : 0;
  }
  for (let r = 0; r < k; r++) keepExact[order[r]!] = 1;
  return { threshold, countAbove, countEqual, keepAll, keepExact };
}

/** k = ceil((1 − r)·n) by integer arithmetic on the ratio's decimal digits (independent of keepCount). */
export function referenceKeep(n: number, ratioDigits: string): number {
  // ratioDigits like "0.95": r = D / 10^d; k = n − floor(n·D / 10^d).
  const frac = ratioDigits.split('.')[1] ?? '';
  const d = BigInt(frac === '' ? 0 : Number(frac));
  const den = 10n ** BigInt(frac.length);
  return n - Number((BigInt(n) * d) / den);
}

/** Normal(0, scale) float32 tensor. */
export function normal(rng: Rng, n: number, scale = 1): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = rng.nextNormal() * scale;
  return out;
}

/** Float32 from raw bits. */
export function fromBits(bits: readonly number[]): Float32Array {
  return new Float32Array(Uint32Array.from(bits).buffer);
}

/** Random finite float32s spread over the whole bit range (all exponents, denormals, both signs). */
export function anyFinite(rng: Rng, n: number): Float32Array {
  const u = new Uint32Array(n);
  for (let i = 0; i < n; i++) {
    let x = rng.nextU32() & 0x7fffffff;
    while (x >= 0x7f800000) x = rng.nextU32() & 0x7fffffff;
    u[i] = (x | (rng.nextU32() & 0x80000000)) >>> 0;
  }
  return new Float32Array(u.buffer);
}

/** Values drawn from a small set (heavy ties), random signs. */
export function pick(rng: Rng, n: number, set: readonly number[]): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = set[rng.nextInt(set.length)]! * (rng.nextU32() & 1 ? -1 : 1);
  return out;
}

/** Split an array into `parts` contiguous segments at random cut points (empty segments allowed). */
export function split(rng: Rng, values: Float32Array, parts: number): Float32Array[] {
  const cuts = Array.from({ length: parts - 1 }, () => rng.nextInt(values.length + 1)).sort((a, b) => a - b);
  const bounds = [0, ...cuts, values.length];
  return bounds.slice(1).map((end, j) => values.subarray(bounds[j], end));
}

/** Byte-equality of two masks with the first differing index (for a readable assertion). */
export function firstDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Math.min(a.length, b.length);
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return i;
  return -1;
}

/** Concatenate masks. */
export function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}
