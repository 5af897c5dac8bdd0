/** k = ceil((1 − r)·n), exactly (docs/architecture.md §2), against integer arithmetic on the ratio's digits. */

import test from 'ava';
import { Rng } from '../../../trainer/src/rng.js';
import { keepCount } from '../../../trainer/src/masking/index.js';
import { referenceKeep } from './reference.js';

const CASES: readonly { n: number; r: number; k: number; why: string }[] = [
  { n: 10, r: 0.1, k: 9, why: '(1 − 0.1)·10 is 9.000000000000002 in doubles' },
  { n: 10, r: 0.3, k: 7, why: 'binary 0.3 is below 3/10' },
  { n: 10, r: 0.7, k: 3, why: 'binary 0.7 is below 7/10' },
  { n: 100, r: 0.99, k: 1, why: 'paper extreme' },
  { n: 20, r: 0.95, k: 1, why: 'paper extreme' },
  { n: 7, r: 0.2, k: 6, why: 'ceil(5.6)' },
  { n: 3, r: 0.5, k: 2, why: 'ceil(1.5)' },
  { n: 1, r: 0.5, k: 1, why: 'k ≥ 1 whenever n ≥ 1' },
  { n: 1, r: 0.999999, k: 1, why: 'near 1' },
  { n: 1000, r: 1 - 2 ** -53, k: 1, why: 'largest ratio below 1' },
  { n: 0, r: 0.5, k: 0, why: 'empty scope' },
  { n: 12345, r: 0, k: 12345, why: 'r = 0 keeps all' },
  { n: 10_000_001, r: 1e-7, k: 10_000_000, why: 'exponent notation' },
  { n: 1_000_000_007, r: 0.1, k: 900_000_007, why: 'large n' },
  { n: 2 ** 53 - 1, r: 0.5, k: 2 ** 52, why: 'largest safe n' },
];
for (const c of CASES) {
  test(`keepCount - n=${c.n} r=${c.r} keeps ${c.k} (${c.why})`, (t) => {
    t.is(keepCount(c.n, c.r), c.k);
  });
}

test('keepCount - rejects ratios outside [0, 1) and bad sizes', (t) => {
  for (const r of [1, -0.1, NaN, Infinity, 1.5]) t.throws(() => keepCount(10, r), { instanceOf: RangeError });
  for (const n of [-1, 1.5, NaN, 2 ** 53]) t.throws(() => keepCount(n, 0.5), { instanceOf: RangeError });
});

test('keepCount - property: equals integer arithmetic on decimal ratios', (t) => {
  const rng = new Rng(7);
  for (let i = 0; i < 5000; i++) {
    const digits = 1 + rng.nextInt(4);
    const d = rng.nextInt(10 ** digits);
    const text = `0.${String(d).padStart(digits, '0')}`;
    const n = rng.nextInt(2_000_000);
    t.is(keepCount(n, Number(text)), referenceKeep(n, text), `n=${n} r=${text}`);
  }
});
