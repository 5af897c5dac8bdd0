import test from 'ava';
import { ByteTokenizer, Gpt2BpeTokenizer, exactMatch, extractAnswer, generationDone, normalizeAnswer } from '../../../trainer/src/data/index.js';

const cases: ReadonlyArray<readonly [string, string, boolean]> = [
  [' 6', '6', true],
  ['6 ', ' 6', true],
  ['a  b\tc', 'a b c', true],
  ['\n cba\n', 'cba', true],
  ['6', '60', false],
  ['ab', 'a b', false],
  ['', '', true],
];
for (const [prediction, reference, expected] of cases) {
  test(`data - exactMatch(${JSON.stringify(prediction)}, ${JSON.stringify(reference)}) is ${expected}`, (t) => {
    t.is(exactMatch(prediction, reference), expected);
  });
}

test('data - normalizeAnswer trims and collapses whitespace', (t) => {
  t.is(normalizeAnswer('  a \n\t b  '), 'a b');
});

for (const tok of [new ByteTokenizer(), new Gpt2BpeTokenizer()]) {
  const extraction: ReadonlyArray<readonly [string, number[], string]> = [
    ['stops at eos', [...tok.encode(' 42'), tok.eosId, ...tok.encode(' junk')], '42'],
    ['stops at a newline', tok.encode(' 42\nQ: 1+1=? A: 2'), '42'],
    ['takes everything without a stop', tok.encode(' cba'), 'cba'],
    ['is empty when eos comes first', [tok.eosId, ...tok.encode('7')], ''],
  ];
  for (const [name, ids, expected] of extraction) {
    test(`data - extractAnswer ${name} (${tok.name})`, (t) => {
      t.is(extractAnswer(tok, ids), expected);
    });
  }

  test(`data - generationDone after eos or newline (${tok.name})`, (t) => {
    t.false(generationDone(tok, tok.encode(' 4')));
    t.true(generationDone(tok, [...tok.encode(' 4'), tok.eosId]));
    t.true(generationDone(tok, tok.encode(' 4\n')));
  });
}
