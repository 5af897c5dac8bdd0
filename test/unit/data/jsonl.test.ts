import { readFile, readdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import test from 'ava';
import { DataError } from '../../../trainer/src/errors.js';
import { ByteTokenizer, loadJsonlDataset, readJsonl, writeJsonl, type DataRecord } from '../../../trainer/src/data/index.js';
import { removeTempDirs, tempDir, writeLines } from './helpers.js';

test.after.always(removeTempDirs);

const tok = new ByteTokenizer();
const pc = (prompt: string, completion: string): string => JSON.stringify({ prompt, completion });

test('data - reads valid prompt/completion lines, skipping blank lines and CRLF', async (t) => {
  const path = await writeLines('train.jsonl', [pc('a', 'b'), '', '   ', pc('c', 'd') + '\r', '']);
  const records = await readJsonl(path);
  t.deepEqual(records, [
    { line: 1, record: { prompt: 'a', completion: 'b' } },
    { line: 4, record: { prompt: 'c', completion: 'd' } },
  ]);
});

test('data - reads valid chat lines', async (t) => {
  const chat = {
    messages: [
      { role: 'system', content: 's' },
      { role: 'user', content: 'u' },
      { role: 'assistant', content: 'a' },
    ],
  };
  const path = await writeLines('chat.jsonl', [JSON.stringify(chat)]);
  t.deepEqual(await readJsonl(path), [{ line: 1, record: chat }]);
});

// Each malformed line sits on line 3 after two good lines; the message must name file:3 and the problem.
const malformed: ReadonlyArray<readonly [string, string, RegExp]> = [
  ['invalid JSON', '{"prompt": "a", ', /invalid JSON/],
  ['not an object', '[1, 2]', /must be a JSON object, got an array/],
  ['a bare string', '"hello"', /must be a JSON object, got a string/],
  ['wrong type', '{"prompt": "a", "completion": 5}', /"completion" must be a string, got a number/],
  ['missing key', '{"prompt": "a"}', /missing "completion"/],
  ['unknown key', '{"prompt": "a", "completion": "b", "answer": "b"}', /unknown key "answer"/],
  ['several unknown keys', '{"prompt": "a", "completion": "b", "x": 1, "y": 2}', /unknown keys "x", "y"/],
  ['no known keys', '{}', /missing "prompt"/],
  ['messages not an array', '{"messages": "hi"}', /"messages" must be an array, got a string/],
  ['a message not an object', '{"messages": [3]}', /"messages\[0\]" must be an object, got a number/],
  ['chat with an unknown role', '{"messages": [{"role": "bot", "content": "x"}]}', /"messages\[0\].role" must be one of "system", "user", "assistant"/],
  ['chat message with an unknown key', '{"messages": [{"role": "assistant", "content": "x", "name": "n"}]}', /unknown key "name" in "messages\[0\]"/],
  ['chat without an assistant', '{"messages": [{"role": "user", "content": "x"}]}', /needs at least one "assistant" message/],
  ['chat with no messages', '{"messages": []}', /"messages" must not be empty/],
  ['chat content of wrong type', '{"messages": [{"role": "assistant", "content": null}]}', /"messages\[0\].content" must be a string, got null/],
  ['chat mixing in prompt keys', '{"messages": [{"role": "assistant", "content": "x"}], "prompt": "p"}', /unknown key "prompt"/],
];
for (const [name, line, problem] of malformed) {
  test(`data - malformed line (${name}) raises DataError naming file:line`, async (t) => {
    const path = await writeLines('bad.jsonl', [pc('a', 'b'), pc('c', 'd'), line]);
    const err = await t.throwsAsync(readJsonl(path), { instanceOf: DataError });
    t.true(err.message.startsWith(`${path}:3: `), err.message);
    t.regex(err.message, problem);
    t.is(err.exitCode, 3);
  });
}

test('data - empty and blank-only files raise DataError', async (t) => {
  for (const lines of [[], ['', '  ', '']]) {
    const path = await writeLines('empty.jsonl', lines);
    const err = await t.throwsAsync(readJsonl(path), { instanceOf: DataError });
    t.regex(err.message, /contains no records/);
  }
});

test('data - a missing file raises DataError with the cause', async (t) => {
  const err = await t.throwsAsync(readJsonl(join(await tempDir(), 'nope.jsonl')), { instanceOf: DataError });
  t.regex(err.message, /cannot read/);
  t.truthy(err.cause);
});

const untokenizable: ReadonlyArray<readonly [string, string, RegExp]> = [
  ['empty completion', pc('a', ''), /:2: "completion" has no tokens/],
  [
    'empty assistant turn',
    JSON.stringify({
      messages: [
        { role: 'user', content: 'u' },
        { role: 'assistant', content: '' },
      ],
    }),
    /:2: "messages\[1\].content" has no tokens/,
  ],
  ['completion longer than maxSeqLen', pc('a', 'x'.repeat(40)), /:2: final target span needs 42 tokens/],
];
for (const [name, line, problem] of untokenizable) {
  test(`data - ${name} raises DataError naming the line`, async (t) => {
    const path = await writeLines('t.jsonl', [pc('p', 'q'), line]);
    const err = await t.throwsAsync(loadJsonlDataset(path, tok, { maxSeqLen: 16 }), { instanceOf: DataError });
    t.true(err.message.startsWith(`${path}:2: `), err.message);
    t.regex(err.message, problem);
  });
}

test('data - overlong examples can be dropped and are listed', async (t) => {
  const path = await writeLines('t.jsonl', [pc('p', 'q'), pc('a', 'x'.repeat(40)), pc('r', 's')]);
  const ds = await loadJsonlDataset(path, tok, { maxSeqLen: 16, overlong: 'drop' });
  t.is(ds.examples.length, 2);
  t.deepEqual(ds.dropped.length, 1);
  t.true(ds.dropped[0]!.startsWith(`${path}:2: final target span`));
  // An empty completion is never droppable: it is a data bug, not a length problem.
  const bad = await writeLines('t.jsonl', [pc('p', 'q'), pc('a', '')]);
  await t.throwsAsync(loadJsonlDataset(bad, tok, { maxSeqLen: 16, overlong: 'drop' }), { instanceOf: DataError });
});

test('data - all examples dropped raises DataError', async (t) => {
  const path = await writeLines('t.jsonl', [pc('a', 'x'.repeat(40))]);
  await t.throwsAsync(loadJsonlDataset(path, tok, { maxSeqLen: 16, overlong: 'drop' }), { instanceOf: DataError, message: /no usable examples/ });
});

test('data - writeJsonl writes atomically what readJsonl reads back, schema fields only', async (t) => {
  const dir = await tempDir();
  const path = join(dir, 'out.jsonl');
  const withExtra = { prompt: 'p', completion: ' c', answer: 'c' };
  const records: DataRecord[] = [
    withExtra,
    {
      messages: [
        { role: 'user', content: 'hi' },
        { role: 'assistant', content: 'yo' },
      ],
    },
  ];
  await writeJsonl(path, records);
  await writeJsonl(path, records); // replacing an existing file works too
  t.deepEqual(await readdir(dirname(path)), ['out.jsonl'], 'no temporary file left behind');
  const back = await readJsonl(path);
  t.deepEqual(
    back.map((r) => r.record),
    [{ prompt: 'p', completion: ' c' }, records[1]],
  );
  t.is((await readFile(path, 'utf8')).split('\n').length, 3);
});
