import test from 'ava';
import {
  ByteTokenizer,
  Gpt2BpeTokenizer,
  buildExample,
  chatGenerationPrompt,
  encodeRecord,
  promptIds,
  type Example,
  type Tokenizer,
} from '../../../trainer/src/data/index.js';

const byte = new ByteTokenizer();
const gpt2 = new Gpt2BpeTokenizer();

function ok(r: ReturnType<typeof encodeRecord>): Example & { truncated: boolean } {
  if (!r.ok) throw new Error(r.reason);
  return { ...r.example, truncated: r.truncated };
}

/** The tokens an example trains on, decoded. */
function targetText(tok: Tokenizer, ex: Example): string {
  return tok.decode(Array.from(ex.ids).filter((_, t) => ex.lossMask[t] === 1));
}

for (const tok of [byte, gpt2]) {
  test(`data - prompt/completion loss mask covers completion + eos only (${tok.name})`, (t) => {
    const ex = ok(encodeRecord(tok, { prompt: 'Q: 3+5-2=? A:', completion: ' 6' }, 64));
    const prompt = tok.encode('Q: 3+5-2=? A:');
    const completion = tok.encode(' 6');
    t.deepEqual(Array.from(ex.ids), [tok.eosId, ...prompt, ...completion, tok.eosId]);
    t.deepEqual(Array.from(ex.lossMask), [0, ...prompt.map(() => 0), ...completion.map(() => 1), 1]);
    t.is(targetText(tok, ex), ' 6<|endoftext|>');
    t.false(ex.truncated);
    t.deepEqual(Array.from(ex.ids.slice(0, 1 + prompt.length)), promptIds(tok, 'Q: 3+5-2=? A:'), 'generation prompt = training prefix');
  });

  test(`data - chat loss mask covers assistant content + eos only (${tok.name})`, (t) => {
    const messages = [
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'rev abc' },
      { role: 'assistant', content: 'cba' },
      { role: 'user', content: 'sort cab' },
      { role: 'assistant', content: 'abc' },
    ] as const;
    const ex = ok(encodeRecord(tok, { messages: [...messages] }, 256));
    t.is(targetText(tok, ex), 'cba<|endoftext|>abc<|endoftext|>');
    t.is(
      tok.decode(Array.from(ex.ids)),
      '<|endoftext|><|system|>\nBe brief.<|endoftext|><|user|>\nrev abc<|endoftext|><|assistant|>\ncba<|endoftext|><|user|>\nsort cab<|endoftext|><|assistant|>\nabc<|endoftext|>',
    );
    // The generation prompt for the last turn is exactly the training prefix before its content.
    const prefix = chatGenerationPrompt(tok, messages.slice(0, 4));
    t.deepEqual(Array.from(ex.ids.slice(0, prefix.length)), prefix);
    t.is(ex.lossMask[prefix.length], 1);
    t.is(ex.lossMask[prefix.length - 1], 0);
  });
}

test('data - truncation cuts the prompt from the left and keeps the completion', (t) => {
  const ex = ok(encodeRecord(byte, { prompt: 'abcdefghij', completion: 'XY' }, 6));
  t.true(ex.truncated);
  t.is(byte.decode(Array.from(ex.ids)), 'hijXY<|endoftext|>'); // 'hij' + 'XY' + eos = 6 tokens
  t.deepEqual(Array.from(ex.lossMask), [0, 0, 0, 1, 1, 1]);
});

test('data - truncation needs one context token before the completion', (t) => {
  const fits = ok(encodeRecord(byte, { prompt: 'abc', completion: 'XY' }, 4));
  t.deepEqual(Array.from(fits.ids), [99, 88, 89, 256]);
  const r = encodeRecord(byte, { prompt: 'abc', completion: 'XYZ' }, 4);
  t.false(r.ok);
  if (!r.ok) t.is(r.kind, 'overlong');
});

test('data - truncation through an earlier assistant turn clears loss on the first kept token', (t) => {
  // Segments: ctx(1) target(3) ctx(2) target(2) → cut 2 tokens lands inside the first target span.
  const r = buildExample(
    [
      { ids: [1], loss: false },
      { ids: [2, 3, 4], loss: true },
      { ids: [5, 6], loss: false },
      { ids: [7, 8], loss: true },
    ],
    6,
  );
  t.true(r.ok);
  if (!r.ok) return;
  t.deepEqual(Array.from(r.example.ids), [3, 4, 5, 6, 7, 8]);
  t.deepEqual(Array.from(r.example.lossMask), [0, 1, 0, 0, 1, 1]);
});

test('data - examples without targets or context are rejected as invalid', (t) => {
  t.like(buildExample([{ ids: [1, 2], loss: false }], 8), { ok: false, kind: 'invalid' });
  t.like(buildExample([{ ids: [1, 2], loss: true }], 8), { ok: false, kind: 'invalid' });
  t.throws(() => buildExample([{ ids: [1], loss: false }], 1), { instanceOf: RangeError });
});
