/** Numeric comparison helpers for tests against golden references. */

/** The worst violation of |a − b| ≤ atol + rtol·|b| over two arrays, with its index. */
export function worstMismatch(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  atol: number,
  rtol: number,
  skip?: (i: number) => boolean,
): { index: number; actual: number; expected: number; excess: number } | undefined {
  if (actual.length !== expected.length) throw new RangeError(`length ${actual.length} vs ${expected.length}`);
  let worst: { index: number; actual: number; expected: number; excess: number } | undefined;
  for (let i = 0; i < actual.length; i++) {
    if (skip?.(i)) continue;
    const a = actual[i]!,
      e = expected[i]!;
    const excess = Math.abs(a - e) - (atol + rtol * Math.abs(e));
    if (!(excess <= 0) && (worst === undefined || excess > worst.excess || Number.isNaN(excess))) worst = { index: i, actual: a, expected: e, excess };
  }
  return worst;
}

/** Bitwise equality of two fp32 arrays (distinguishes −0 and +0, compares NaN payloads). */
export function bitEqual(a: Float32Array, b: Float32Array): boolean {
  if (a.length !== b.length) return false;
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length),
    ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < ua.length; i++) if (ua[i] !== ub[i]) return false;
  return true;
}
