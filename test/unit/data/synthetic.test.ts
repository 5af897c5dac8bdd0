import test from 'ava';
import { deriveSeed, Rng } from '../../../trainer/src/rng.js';
import { ConfigError, DataError } from '../../../trainer/src/errors.js';
import {
  ByteTokenizer,
  buildDataset,
  encodeCorpus,
  generateCorpus,
  generateProblems,
  parseSyntheticTask,
  splitTrainEval,
  symbolicProblem,
  type SyntheticProblem,
  type SyntheticTask,
} from '../../../trainer/src/data/index.js';

const compact = parseSyntheticTask({ kind: 'arithmetic', options: { style: 'compact', minSteps: 1, maxSteps: 3, maxOperand: 20 } });
const words = parseSyntheticTask({ kind: 'arithmetic', options: { style: 'words', minSteps: 1, maxSteps: 3 } });
const symbolic = parseSyntheticTask({ kind: 'symbolic' });
const tasks: ReadonlyArray<readonly [string, SyntheticTask]> = [
  ['compact', compact],
  ['words', words],
  ['symbolic', symbolic],
];

/** Independent evaluation of a compact prompt like `Q: 3+5-2=? A:`. */
function solveCompact(prompt: string): number {
  const m = /^Q: (\d+)((?:[+-]\d+){1,3})=\? A:$/.exec(prompt);
  if (m === null) throw new Error(`bad compact prompt ${prompt}`);
  let total = Number(m[1]);
  for (const [, op, n] of m[2]!.matchAll(/([+-])(\d+)/g)) total += op === '+' ? Number(n) : -Number(n);
  return total;
}

/** Independent reading of a word problem: the start after "has", then each verb with its sign. */
function solveWords(prompt: string): number {
  const m = /^(\w+) has (\d+) (\w+)\. (?:He|She) (.+)\. How many \3 does \1 have\?\nAnswer:$/.exec(prompt);
  if (m === null) throw new Error(`bad word prompt ${JSON.stringify(prompt)}`);
  let total = Number(m[2]);
  let steps = 0;
  for (const [, verb, n] of m[4]!.matchAll(/(buys|finds|gets|gives away|loses|sells) (\d+)/g)) {
    total += ['buys', 'finds', 'gets'].includes(verb!) ? Number(n) : -Number(n);
    steps++;
  }
  if (steps < 1 || steps > 3) throw new Error(`bad step count in ${prompt}`);
  return total;
}

/** Independent symbolic reference. */
function solveSymbolic(prompt: string): string {
  const m = /^(rev|sort|rot) ([a-h]+) =$/.exec(prompt);
  if (m === null) throw new Error(`bad symbolic prompt ${prompt}`);
  const w = m[2]!;
  if (m[1] === 'rev') return w.split('').reverse().join('');
  if (m[1] === 'sort') return w.split('').sort().join('');
  return w.replace(/[a-h]/g, (c) => 'bcdefgha'['abcdefgh'.indexOf(c)]!);
}

const solvers: Record<string, (p: SyntheticProblem) => string> = {
  compact: (p) => String(solveCompact(p.prompt)),
  words: (p) => String(solveWords(p.prompt)),
  symbolic: (p) => solveSymbolic(p.prompt),
};

for (const [name, task] of tasks) {
  test(`data - ${name} problems are deterministic by seed and differ across seeds`, (t) => {
    t.deepEqual(generateProblems(11, task, 50), generateProblems(11, task, 50));
    t.notDeepEqual(generateProblems(11, task, 50), generateProblems(12, task, 50));
    t.deepEqual(generateProblems(11, task, 50).slice(0, 10), generateProblems(11, task, 10), 'problem i does not depend on count');
  });

  test(`data - ${name} answers are correct (recomputed independently)`, (t) => {
    for (const p of generateProblems(3, task, 500)) {
      t.is(p.answer, solvers[name]!(p), p.prompt);
      t.is(p.completion, ` ${p.answer}`);
      if (task.kind === 'arithmetic') t.true(Number(p.answer) >= 0);
    }
  });

  test(`data - ${name} train and eval splits are disjoint and deterministic`, (t) => {
    const split = splitTrainEval(9, task, { trainCount: 300, evalCount: 50 });
    t.is(split.train.length, 300);
    t.is(split.eval.length, 50);
    const evalPrompts = new Set(split.eval.map((p) => p.prompt));
    t.is(evalPrompts.size, 50);
    t.is(new Set(split.train.map((p) => p.prompt)).size, 300);
    t.false(split.train.some((p) => evalPrompts.has(p.prompt)));
    t.deepEqual(splitTrainEval(9, task, { trainCount: 300, evalCount: 50 }), split);
  });
}

test('data - difficulty knobs bound steps, operands and lengths', (t) => {
  const one = parseSyntheticTask({ kind: 'arithmetic', options: { minSteps: 3, maxSteps: 3, maxOperand: 5 } });
  for (const p of generateProblems(1, one, 200)) {
    const nums = p.prompt.match(/\d+/g)!.map(Number);
    t.is(nums.length, 4);
    t.true(nums.every((n) => n <= 5));
  }
  const opts = { ops: ['rev' as const], minLength: 4, maxLength: 4, alphabet: 3 };
  const rng = new Rng(deriveSeed(1, 'test'));
  for (let i = 0; i < 50; i++) t.regex(symbolicProblem(rng, opts).prompt, /^rev [abc]{4} =$/);
});

test('data - bad task specs raise ConfigError', (t) => {
  t.throws(() => parseSyntheticTask({ kind: 'arithmetic', options: { minSteps: 3, maxSteps: 1 } }), { instanceOf: ConfigError });
  t.throws(() => parseSyntheticTask({ kind: 'arithmetic', options: { steps: 2 } }), { instanceOf: ConfigError });
  t.throws(() => parseSyntheticTask({ kind: 'poetry' }), { instanceOf: ConfigError });
});

test('data - a split larger than the problem space raises DataError', (t) => {
  const tiny = parseSyntheticTask({ kind: 'arithmetic', options: { minSteps: 1, maxSteps: 1, maxOperand: 1 } });
  // start ∈ {0,1}, one step ±1 (no − from 0): 3 distinct problems.
  t.throws(() => splitTrainEval(1, tiny, { trainCount: 3, evalCount: 1 }), { instanceOf: DataError });
  t.is(splitTrainEval(1, tiny, { trainCount: 2, evalCount: 1 }).train.length, 2);
});

test('data - corpus is deterministic, mixes formats and excludes held-out prompts', (t) => {
  const split = splitTrainEval(4, compact, { trainCount: 10, evalCount: 200 });
  const exclude = new Set(split.eval.map((p) => p.prompt));
  const options = { documents: 100, linesPerDocument: 8, tasks: [compact, words, symbolic], exclude, freeTextRate: 0.3 };
  const docs = generateCorpus(5, options);
  t.deepEqual(generateCorpus(5, options), docs);
  t.is(docs.length, 100);
  const lines = docs.flatMap((d) => d.split('\n').filter((l) => !l.startsWith('Answer:')));
  t.true(
    lines.some((l) => l.startsWith('Q: ')),
    'compact lines',
  );
  t.true(
    lines.some((l) => / has \d+ \w+\. (He|She) /.test(l)),
    'word lines',
  );
  t.true(
    lines.some((l) => /^(rev|sort|rot) /.test(l)),
    'symbolic lines',
  );
  t.true(
    lines.some((l) => !/^Q: |^(rev|sort|rot) | has \d+ \w+\. (He|She) /.test(l)),
    'free text lines',
  );
  const text = docs.join('\n');
  for (const p of split.eval) t.false(text.includes(p.prompt), p.prompt);
  // Solved compact lines carry correct answers.
  for (const l of lines.filter((x) => x.startsWith('Q: '))) t.is(l, `${l.slice(0, l.indexOf('A:') + 2)} ${solveCompact(l.slice(0, l.indexOf('A:') + 2))}`);
});

test('data - encodeCorpus joins documents with eos', (t) => {
  const tok = new ByteTokenizer();
  t.deepEqual(Array.from(encodeCorpus(tok, ['ab', 'c'])), [256, 97, 98, 256, 99, 256]);
});

test('data - synthetic problems build a byte-level dataset within a small context', (t) => {
  const tok = new ByteTokenizer();
  const problems = generateProblems(1, compact, 100);
  const ds = buildDataset(
    'synthetic:arithmetic',
    problems.map((record, i) => ({ line: i + 1, record })),
    tok,
    { maxSeqLen: 32 },
  );
  t.is(ds.examples.length, 100);
  t.is(ds.truncated, 0);
});
