import test from 'ava';
import { configKeys } from '../../../trainer/src/config/load.js';
import { flagName } from '../../../trainer/src/config/describe.js';
import { didYouMean, editDistance, suggest } from '../../../trainer/src/config/suggest.js';

const distances = [
  ['', '', 0],
  ['abc', '', 3],
  ['kitten', 'sitting', 3],
  ['maskratio', 'maskratoi', 1],
  ['ab', 'ba', 1],
  ['abc', 'abc', 0],
  ['flaw', 'lawn', 2],
] as const;
for (const [a, b, d] of distances) {
  test(`suggest - edit distance ${JSON.stringify(a)} ↔ ${JSON.stringify(b)} is ${d}`, (t) => {
    t.is(editDistance(a, b), d);
    t.is(editDistance(b, a), d);
  });
}

const keyCases = [
  { input: 'maskRation', want: 'maskRatio' },
  { input: 'mask_ratio', want: 'maskRatio' },
  { input: 'maskratoi', want: 'maskRatio' },
  { input: 'MASKSCOPE', want: 'maskScope' },
  { input: 'learningRate', want: undefined },
  { input: 'stpes', want: 'steps' },
  { input: 'x', want: undefined },
  { input: 'evalEvry', want: 'evalEvery' },
] as const;
for (const c of keyCases) {
  test(`suggest - config key ${c.input} → ${c.want ?? 'nothing'}`, (t) => {
    t.is(suggest(c.input, configKeys()), c.want);
  });
}

test('suggest - flags are matched in kebab-case and the message reads "did you mean"', (t) => {
  const flags = configKeys().map(flagName);
  t.is(suggest('--mask-ratoi', flags), '--mask-ratio');
  t.is(didYouMean('--chekpoint-dir', flags), ' (did you mean --checkpoint-dir?)');
  t.is(didYouMean('--zzzzzzzz', flags), '');
});
