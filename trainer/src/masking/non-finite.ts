/**
 * Non-finite gradients. A NaN or ±Inf in Γ has no meaningful saliency (docs/architecture.md §2), so the
 * mask is never computed from it: the selection reports the first bad entry instead, and the
 * trainer's skip policy decides whether the step is skipped (like AMP overflow skipping).
 */

import { NumericError } from '../errors.js';

/** Which kind of non-finite value was found first. */
export type NonFiniteKind = 'nan' | 'inf';

/** Where a non-finite value sits: scope ("global" or a tensor name), tensor name, flat index. */
export interface NonFiniteLocation {
  readonly scope: string;
  readonly tensor: string;
  readonly index: number;
  readonly value: number;
}

/**
 * A NaN or ±Inf in a gradient (or delta) scope; names the scope, tensor and flat index. Its `name`
 * stays "NumericError": errors.ts types NumericError.name as that literal, so a subclass cannot
 * override it; tell it apart with instanceof.
 */
export class NonFiniteGradientError extends NumericError {
  readonly kind: NonFiniteKind;
  readonly scope: string;
  readonly tensor: string;
  readonly index: number;
  readonly value: number;

  constructor(location: NonFiniteLocation, options?: { cause?: unknown }) {
    const kind: NonFiniteKind = Number.isNaN(location.value) ? 'nan' : 'inf';
    super(
      `non-finite gradient (${String(location.value)}) in tensor "${location.tensor}" at flat index ` +
        `${location.index} (mask scope "${location.scope}"); no mask computed`,
      options,
    );
    this.kind = kind;
    this.scope = location.scope;
    this.tensor = location.tensor;
    this.index = location.index;
    this.value = location.value;
  }
}

/** Exponent all ones: the float32 bit pattern (sign cleared) of +Inf; anything ≥ it is Inf or NaN. */
export const NON_FINITE_BITS = 0x7f800000;

/** Index of the first NaN or ±Inf in `arr`, or −1 when every entry is finite. */
export function findNonFinite(arr: Float32Array): number {
  // One integer compare per entry on the bit view: cheaper than Number.isFinite on a double.
  const u = new Uint32Array(arr.buffer, arr.byteOffset, arr.length);
  const n = u.length;
  for (let i = 0; i < n; i++) {
    if ((u[i]! & 0x7fffffff) >= NON_FINITE_BITS) return i;
  }
  return -1;
}
