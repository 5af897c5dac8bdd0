/**
 * Bad input through the real CLI: a clear message naming the problem (field, file, line), the right
 * exit code, and nothing written or overwritten.
 */
import test from 'ava';
import { mkdtemp, readFile, readdir, rm, writeFile, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EXIT_CODES } from '../../../contract/exit-codes.js';
import { runCli } from '../../helpers/cli.js';

const quick = ['--base-model', 'none', '--model-preset', 'micro', '--seq-len', '32', '--steps', '2', '--eval-examples', '4', '--progress', 'none'];

async function tmp(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'gmt-cli-'));
}

const configCases = [
  {
    name: 'unknown key in the config file',
    file: { maskRatio: 0.2, maskRation: 0.3 },
    flags: [],
    re: /config file .*unknown key "maskRation" \(did you mean maskRatio\?\)/,
  },
  { name: 'unknown snake_case key in the config file', file: { mask_scope: 'global' }, flags: [], re: /unknown key "mask_scope" \(did you mean maskScope\?\)/ },
  { name: 'maskRatio outside [0, 1) from the file', file: { maskRatio: 1 }, flags: [], re: /config file .*maskRatio: maskRatio must be < 1/ },
  { name: 'negative learning rate from a flag', file: {}, flags: ['--lr', '-0.1'], re: /flag --lr: lr: lr must be positive/ },
  { name: 'non-numeric flag value', file: {}, flags: ['--mask-ratio', 'lots'], re: /flag --mask-ratio: "lots" is not a number/ },
  { name: 'unknown flag', file: {}, flags: ['--mask-ration', '0.1'], re: /unknown option '--mask-ration'\n\(Did you mean --mask-ratio\?\)/ },
  { name: 'stray argument', file: {}, flags: ['0.1'], re: /too many arguments/ },
  { name: 'non-boolean flag value', file: {}, flags: ['--deterministic', 'maybe'], re: /flag --deterministic: "maybe" is not true or false/ },
  { name: 'negative thread count', file: {}, flags: ['--threads', '-1'], re: /flag --threads: threads/ },
  { name: 'enum value', file: { maskScope: 'layer' }, flags: [], re: /maskScope/ },
  { name: 'malformed JSON config', file: '{"maskRatio": 0.2,', flags: [], re: /invalid JSON/ },
] as const;

for (const c of configCases) {
  test(`cli - ${c.name} exits ${EXIT_CODES.config} with a message naming it`, async (t) => {
    const dir = await tmp();
    try {
      const cfg = join(dir, 'cfg.json');
      await writeFile(cfg, typeof c.file === 'string' ? c.file : JSON.stringify(c.file));
      const r = await runCli(['--config', cfg, ...quick, '--checkpoint-dir', join(dir, 'ckpt'), ...c.flags]);
      t.is(r.code, EXIT_CODES.config, r.stderr);
      t.regex(r.stderr, c.re);
      await t.throwsAsync(stat(join(dir, 'ckpt')), undefined, 'nothing written');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
}

test(`cli - malformed JSONL exits ${EXIT_CODES.data} naming file and line`, async (t) => {
  const dir = await tmp();
  try {
    const data = join(dir, 'train.jsonl');
    await writeFile(data, '{"prompt": "a", "completion": " b"}\n{"prompt": "c", "completion": 5}\n');
    const r = await runCli([...quick, '--train-data', data, '--eval-data', 'synthetic:arithmetic', '--checkpoint-dir', join(dir, 'ckpt')]);
    t.is(r.code, EXIT_CODES.data, r.stderr);
    t.true(r.stderr.includes(`${data}:2:`), r.stderr);
    t.regex(r.stderr, /completion/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test(`cli - a checkpoint of another architecture or a truncated weights file exits ${EXIT_CODES.checkpoint}, nothing overwritten`, async (t) => {
  const dir = await tmp();
  try {
    const ckpt = join(dir, 'ckpt');
    const first = await runCli([...quick, '--checkpoint-dir', ckpt]);
    t.is(first.code, 0, first.stderr);
    const before = await readdir(ckpt);
    const latest = (await readFile(join(ckpt, 'latest'), 'utf-8')).trim();
    const modelBytes = await readFile(join(ckpt, latest, 'model.safetensors'));
    // Same checkpoint dir, different architecture (nEmbd 96 vs 32): resume must refuse.
    const other = await runCli([...quick, '--model-preset', 'tiny', '--checkpoint-dir', ckpt]);
    t.is(other.code, EXIT_CODES.checkpoint, other.stderr);
    t.regex(other.stderr, /nEmbd|shape|architecture|config/i);
    t.deepEqual(await readdir(ckpt), before);
    t.deepEqual(await readFile(join(ckpt, latest, 'model.safetensors')), modelBytes);
    // A truncated base-model file.
    const truncated = join(dir, 'trunc.safetensors');
    await writeFile(truncated, modelBytes.subarray(0, modelBytes.length - 100));
    const bad = await runCli([...quick, '--base-model', truncated, '--checkpoint-dir', join(dir, 'ckpt2')]);
    t.is(bad.code, EXIT_CODES.checkpoint, bad.stderr);
    t.regex(bad.stderr, /trunc\.safetensors: truncated/);
    await t.throwsAsync(stat(join(dir, 'ckpt2')));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test(`cli - an unreadable NATS credentials file exits ${EXIT_CODES.config} naming it`, async (t) => {
  const dir = await tmp();
  try {
    const r = await runCli([...quick, '--world-size', '2', '--nats-url', 'nats://127.0.0.1:1', '--checkpoint-dir', join(dir, 'ckpt')], {
      NATS_CREDS: join(dir, 'missing.creds'),
    });
    t.is(r.code, EXIT_CODES.config, r.stderr);
    t.true(r.stderr.includes('missing.creds'), r.stderr);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
