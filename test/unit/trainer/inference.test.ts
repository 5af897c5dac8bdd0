/**
 * `gmt-train eval` and `gmt-train generate` through the real CLI: eval reproduces the numbers the
 * training run reported for its final checkpoint, and greedy generation equals the evaluator's
 * batched greedy decoding (an independent code path).
 */
import test from 'ava';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { initBackend } from '../../../trainer/src/backend.js';
import { createTokenizer, promptIds } from '../../../trainer/src/data/index.js';
import { EXIT_CODES } from '../../../contract/exit-codes.js';
import { loadForInference, pickToken } from '../../../trainer/src/train/inference.js';
import { Gpt2Model } from '../../../trainer/src/model/gpt2.js';
import { Rng } from '../../../trainer/src/rng.js';
import { greedyGenerate } from '../../../trainer/src/train/evaluate.js';
import { MICRO_MODEL, runCli } from '../../helpers/cli.js';

const quick = [...MICRO_MODEL, '--steps', '6', '--eval-examples', '12', '--synthetic-eval-size', '12', '--backend', 'cpu'];
const EvalLine = z.looseObject({ msg: z.string(), loss: z.number(), exactMatch: z.number(), examples: z.number() });
const EvalJson = z.object({
  checkpoint: z.string(),
  backend: z.string(),
  loss: z.number(),
  perplexity: z.number(),
  exactMatch: z.number(),
  examples: z.number(),
});

let dir = '';
test.before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'gmt-inference-'));
});
test.after.always(async () => {
  await rm(dir, { recursive: true, force: true });
});

test.serial('inference - gmt-train eval of the final checkpoint gives exactly the run\'s "eval after" numbers', async (t) => {
  const ckpt = join(dir, 'run');
  const run = await runCli([...quick, '--checkpoint-dir', ckpt, '--progress', 'none', '--log-format', 'json']);
  t.is(run.code, 0, run.stderr);
  const after = run.stderr
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as unknown)
    .map((x) => EvalLine.safeParse(x))
    .find((r) => r.success && r.data.msg === 'eval after');
  t.truthy(after?.data, run.stderr);
  const ev = await runCli(['eval', '--checkpoint', ckpt, '--json']);
  t.is(ev.code, 0, ev.stderr);
  const got = EvalJson.parse(JSON.parse(ev.stdout));
  t.is(got.backend, 'cpu', 'the backend stored in the checkpoint is used');
  t.is(got.loss, after!.data!.loss);
  t.is(got.exactMatch, after!.data!.exactMatch);
  t.is(got.examples, after!.data!.examples);
  const text = await runCli(['eval', '--checkpoint', ckpt]);
  t.is(text.code, 0, text.stderr);
  t.regex(text.stdout, /^eval .*step-00000006: loss \d+\.\d{4} · ppl \d+\.\d{4} · exact match \d+\.\d% of 12 \(cpu\)/);
});

test.serial("inference - greedy generate streams what the evaluator's batched greedy decoding produces", async (t) => {
  const prompt = 'Q: 12+7=? A:';
  const r = await runCli(['generate', '--checkpoint', 'bundled', '--prompt', prompt, '--max-new-tokens', '12', '--stop', 'eos', '--backend', 'cpu']);
  t.is(r.code, 0, r.stderr);
  await initBackend('cpu');
  const m = await loadForInference('bundled');
  const tok = createTokenizer('byte');
  const model = new Gpt2Model(m.modelConfig);
  const ids = greedyGenerate(model, m.params, tok, [promptIds(tok, prompt)], 12)[0]!;
  const eos = ids.indexOf(tok.eosId);
  const want = tok.decode(eos < 0 ? ids : ids.slice(0, eos));
  t.is(r.stdout, `${prompt}${want}${want.endsWith('\n') ? '' : '\n'}`);
});

test.serial('inference - sampling is reproducible by seed; a JSONL of prompts gives one continuation each; bad lines name file:line', async (t) => {
  const file = join(dir, 'prompts.jsonl');
  await writeFile(file, '{"prompt": "Q: 1+1=? A:"}\n\n{"prompt": "Q: 3+4=? A:"}\n');
  const args = ['generate', '--checkpoint', 'bundled', '--prompts', file, '--temperature', '0.8', '--top-k', '20', '--sample-seed', '5', '--backend', 'cpu'];
  const a = await runCli(args),
    b = await runCli(args);
  t.is(a.code, 0, a.stderr);
  t.is(a.stdout, b.stdout);
  const lines = a.stdout.trimEnd().split('\n');
  t.is(lines.length, 2, a.stdout);
  t.true(lines[0]!.startsWith('Q: 1+1=? A:') && lines[1]!.startsWith('Q: 3+4=? A:'), a.stdout);
  await writeFile(file, '{"prompt": "ok"}\n{"text": "no prompt"}\n');
  const bad = await runCli(['generate', '--checkpoint', 'bundled', '--prompts', file, '--backend', 'cpu']);
  t.is(bad.code, EXIT_CODES.data, bad.stderr);
  t.true(bad.stderr.includes(`${file}:2: expected an object with a "prompt" string`), bad.stderr);
  const none = await runCli(['generate', '--checkpoint', 'bundled']);
  t.is(none.code, EXIT_CODES.config);
  t.regex(none.stderr, /give --prompt TEXT or --prompts FILE\.jsonl/);
});

test('inference - pickToken: greedy takes the lowest id among ties; top-k 1 is greedy; sampling follows the softmax', (t) => {
  const rng = new Rng(1);
  t.is(pickToken(Float32Array.of(1, 3, 3, 2), { temperature: 0, topK: 0 }, rng), 1);
  for (let i = 0; i < 20; i++) t.is(pickToken(Float32Array.of(0.5, 0.1, 2, 1.9), { temperature: 1, topK: 1 }, rng), 2);
  // Two tokens with logits differing by ln 3 at temperature 1: probabilities 3/4 and 1/4.
  const counts = [0, 0];
  for (let i = 0; i < 20_000; i++) counts[pickToken(Float32Array.of(Math.log(3), 0), { temperature: 1, topK: 0 }, rng)]!++;
  t.true(Math.abs(counts[0]! / 20_000 - 0.75) < 0.015, String(counts));
});
