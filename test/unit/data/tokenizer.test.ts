import test from 'ava';
import { ByteTokenizer, Gpt2BpeTokenizer, createTokenizer } from '../../../trainer/src/data/index.js';

const byte = new ByteTokenizer();
const gpt2 = new Gpt2BpeTokenizer();

const roundTrips = [
  '',
  'a',
  'Hello world',
  'héllo wörld',
  '日本語のテキスト',
  '🤖👍🏽 emoji',
  'tabs\tand\nnewlines\r\n',
  '<|endoftext|> is text here',
  'Q: 3+5-2=? A: 6',
];

for (const text of roundTrips) {
  test(`data - byte tokenizer round-trips ${JSON.stringify(text)}`, (t) => {
    const ids = byte.encode(text);
    t.deepEqual(ids, Array.from(Buffer.from(text, 'utf8')));
    t.true(ids.every((id) => id >= 0 && id < 256));
    t.is(byte.decode(ids), text);
  });
  test(`data - gpt2 tokenizer round-trips ${JSON.stringify(text)}`, (t) => {
    const ids = gpt2.encode(text);
    t.true(
      ids.every((id) => Number.isInteger(id) && id >= 0 && id < 50256),
      'plain text never yields the eos id',
    );
    t.is(gpt2.decode(ids), text);
  });
}

// Reference ids from GPT-2's encoder.json / HF `GPT2TokenizerFast.from_pretrained("gpt2")`.
const gpt2Known: ReadonlyArray<readonly [string, readonly number[]]> = [
  ['Hello world', [15496, 995]],
  [' the', [262]],
  ['!', [0]],
  ['\n', [198]],
  [' 6', [718]],
  ['hello', [31373]],
];
for (const [text, ids] of gpt2Known) {
  test(`data - gpt2 encodes ${JSON.stringify(text)} as GPT-2 does`, (t) => {
    t.deepEqual(gpt2.encode(text), ids);
  });
}

test('data - tokenizer specials and sizes', (t) => {
  t.like(byte, { name: 'byte', vocabSize: 258, eosId: 256, padId: 257 });
  t.like(gpt2, { name: 'gpt2', vocabSize: 50257, eosId: 50256, padId: 50256 });
  t.is(gpt2.decode([50256]), '<|endoftext|>');
  t.is(byte.decode([104, 105, 256, 257]), 'hi<|endoftext|><|pad|>');
});

test('data - gpt2 treats special-token text as plain text', (t) => {
  const ids = gpt2.encode('<|endoftext|>');
  t.false(ids.includes(50256));
  t.true(ids.length > 1);
});

test('data - decode rejects ids outside the vocab', (t) => {
  t.throws(() => byte.decode([258]), { instanceOf: RangeError });
  t.throws(() => byte.decode([-1]), { instanceOf: RangeError });
  t.throws(() => gpt2.decode([50257]), { instanceOf: RangeError });
  t.throws(() => gpt2.decode([1.5]), { instanceOf: RangeError });
});

test('data - createTokenizer maps names to implementations', (t) => {
  t.true(createTokenizer('byte') instanceof ByteTokenizer);
  t.true(createTokenizer('gpt2') instanceof Gpt2BpeTokenizer);
});
