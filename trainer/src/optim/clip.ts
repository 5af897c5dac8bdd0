/**
 * Global-norm gradient clipping (torch.nn.utils.clip_grad_norm_ semantics: coefficient
 * maxNorm / (norm + 1e-6), applied only when below 1). docs/architecture.md §2: clip the full Γ before
 * masking; a uniform rescale never changes which entries are kept.
 */
import { nativeHost } from '../native/host.js';

/** Sum of squares of a vector range, accumulated in fp64 in index order (deterministic). */
export function sumSquares(v: Float32Array, lo = 0, hi = v.length): number {
  let s0 = 0,
    s1 = 0,
    s2 = 0,
    s3 = 0;
  let i = lo;
  for (; i + 3 < hi; i += 4) {
    const a = v[i]!,
      b = v[i + 1]!,
      c = v[i + 2]!,
      d = v[i + 3]!;
    s0 += a * a;
    s1 += b * b;
    s2 += c * c;
    s3 += d * d;
  }
  for (; i < hi; i++) s0 += v[i]! * v[i]!;
  return s0 + s1 + s2 + s3;
}

/** The factor to multiply gradients by (1 when no clipping is needed or maxNorm ≤ 0). */
export function clipCoefficient(norm: number, maxNorm: number): number {
  if (!(maxNorm > 0)) return 1;
  const coef = maxNorm / (norm + 1e-6);
  return coef < 1 ? coef : 1;
}

/** Multiply a vector range in place by a scalar (rounded to fp32 per element). */
export function scaleInPlace(v: Float32Array, factor: number, lo = 0, hi = v.length): void {
  if (factor === 1) return;
  const f = Math.fround(factor);
  const native = nativeHost();
  if (native !== undefined)
    native.fns.scale(v, lo, hi, f, native.threads); // the same fp32 products, on threads
  else for (let i = lo; i < hi; i++) v[i] = v[i]! * f;
}
