/**
 * How many entries a scope keeps: k = ceil((1 − r)·n) (docs/architecture.md §2), equivalently
 * n − floor(r·n).
 *
 * Computed in exact rational arithmetic, because the obvious `Math.ceil((1 - r) * n)` is wrong on
 * ordinary inputs: (1 − 0.1)·10 evaluates to 9.000000000000002 and gives 10. The ratio is taken as
 * the decimal it prints as (its shortest round-trip form, i.e. what the user wrote in the config),
 * not as the binary double: 0.3 means 3/10, so n = 10 keeps 7 — the binary value of 0.3 is
 * 0.29999999999999998890, which would keep 8.
 */

/** Exact rational num/den of the shortest decimal that round-trips to `x` (x finite, ≥ 0). */
function decimalFraction(x: number): { num: bigint; den: bigint } {
  const text = String(x); // ECMAScript Number::toString gives the shortest round-trip decimal
  const m = /^(\d+)(?:\.(\d+))?(?:e([+-]\d+))?$/.exec(text);
  if (m === null) throw new RangeError(`keepCount: cannot read ratio ${text}`);
  const frac = m[2] ?? '';
  const scale = frac.length - Number(m[3] ?? '0'); // value = digits · 10^-scale
  const digits = BigInt((m[1] ?? '0') + frac);
  return scale >= 0 ? { num: digits, den: 10n ** BigInt(scale) } : { num: digits * 10n ** BigInt(-scale), den: 1n };
}

/** k = ceil((1 − maskRatio)·n), exactly; maskRatio ∈ [0, 1), n a non-negative safe integer. */
export function keepCount(n: number, maskRatio: number): number {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`keepCount: bad size ${n}`);
  if (!(maskRatio >= 0 && maskRatio < 1)) {
    throw new RangeError(`keepCount: maskRatio must be in [0, 1), got ${maskRatio}`);
  }
  const { num, den } = decimalFraction(maskRatio);
  // ceil((1 − r)·n) = n − floor(r·n); BigInt division truncates, which is floor for r·n ≥ 0.
  const dropped = (num * BigInt(n)) / den;
  return n - Number(dropped);
}
