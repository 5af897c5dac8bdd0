import test from 'ava';
import { mkdir, open, readFile, readdir, rename, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CheckpointError } from '../../../trainer/src/errors.js';
import { findLatestCheckpoint, readCheckpoint, stepDirName, writeCheckpoint } from '../../../trainer/src/checkpoint/index.js';
import { ParamLayout } from '../../../trainer/src/model/params.js';
import { MICRO, RUN_CONFIG, buildPayload, sameBits, tempDir } from './fixtures.js';

const DEAD_PID = 4_194_304 + 7; // above Linux's pid_max limit (2^22): never a live process

for (const kind of ['adamw', 'sgd'] as const) {
  test(`checkpoint - round trip is bit-exact (${kind})`, async (t) => {
    const { dir, cleanup } = await tempDir();
    t.teardown(cleanup);
    const payload = buildPayload(7, MICRO, kind);
    const path = await writeCheckpoint(dir, payload, { keep: 2 });
    t.is(path, join(dir, 'step-00000007'));
    t.deepEqual((await readdir(path)).sort(), ['config.json', 'manifest.json', 'model.safetensors', 'optimizer.safetensors', 'trainer-state.json']);
    const got = await readCheckpoint(path, { layout: new ParamLayout(MICRO), configHash: 'hash-a' });
    t.deepEqual(got.modelConfig, MICRO);
    t.true(sameBits(got.params, payload.params));
    t.true(sameBits(got.optimizer.m, payload.optimizer.m));
    t.true(sameBits(got.optimizer.v, payload.optimizer.v));
    t.is(got.optimizer.kind, kind);
    t.is(got.optimizer.step, 7);
    t.deepEqual(got.state, payload.state);
    const hf = JSON.parse(await readFile(join(path, 'config.json'), 'utf-8')) as Record<string, unknown>;
    t.like(hf, {
      model_type: 'gpt2',
      architectures: ['GPT2LMHeadModel'],
      n_embd: 32,
      n_layer: 2,
      n_head: 4,
      tie_word_embeddings: true,
      activation_function: 'gelu_new',
    });
  });
}

test('checkpoint - latest points at the newest and pruning keeps 2 of 5', async (t) => {
  const { dir, cleanup } = await tempDir();
  t.teardown(cleanup);
  for (let s = 1; s <= 5; s++) await writeCheckpoint(dir, buildPayload(s), { keep: 2 });
  t.deepEqual((await readdir(dir)).sort(), ['latest', 'step-00000004', 'step-00000005']);
  t.is((await readFile(join(dir, 'latest'), 'utf-8')).trim(), 'step-00000005');
  t.is(await findLatestCheckpoint(dir), join(dir, 'step-00000005'));
});

test('checkpoint - writing the same step again replaces it and leaves no side folders', async (t) => {
  const { dir, cleanup } = await tempDir();
  t.teardown(cleanup);
  await writeCheckpoint(dir, buildPayload(3), { keep: 3 });
  const again = buildPayload(3);
  again.params.fill(0.5);
  const path = await writeCheckpoint(dir, again, { keep: 3 });
  t.deepEqual((await readdir(dir)).sort(), ['latest', 'step-00000003']);
  t.is((await readCheckpoint(path)).params[0], 0.5);
});

test('checkpoint - findLatestCheckpoint of a missing or empty dir is undefined', async (t) => {
  const { dir, cleanup } = await tempDir();
  t.teardown(cleanup);
  t.is(await findLatestCheckpoint(join(dir, 'nope')), undefined);
  t.is(await findLatestCheckpoint(dir), undefined);
});

const tears: ReadonlyArray<readonly [string, string, (path: string) => Promise<void>, RegExp]> = [
  ['manifest deleted', 'manifest.json', (p) => rm(join(p, 'manifest.json')), /manifest\.json: missing/],
  [
    'model truncated',
    'model.safetensors',
    async (p) => truncate(join(p, 'model.safetensors'), (await stat(join(p, 'model.safetensors'))).size - 3),
    /model\.safetensors: \d+ bytes but the manifest says/,
  ],
  [
    'model byte flipped',
    'model.safetensors',
    async (p) => {
      const fh = await open(join(p, 'model.safetensors'), 'r+');
      const b = Buffer.alloc(1);
      await fh.read(b, 0, 1, 900);
      b[0] = b[0]! ^ 0x01;
      await fh.write(b, 0, 1, 900);
      await fh.close();
    },
    /model\.safetensors: checksum mismatch \(file corrupt or truncated\)/,
  ],
  [
    'state byte flipped',
    'trainer-state.json',
    async (p) => {
      const f = join(p, 'trainer-state.json');
      await writeFile(f, (await readFile(f, 'utf-8')).replace('"step": 2', '"step": 3'));
    },
    /trainer-state\.json: checksum mismatch/,
  ],
];
for (const [what, file, tear, message] of tears) {
  test(`checkpoint - torn checkpoint (${what}) is skipped and reading it names ${file}`, async (t) => {
    const { dir, cleanup } = await tempDir();
    t.teardown(cleanup);
    await writeCheckpoint(dir, buildPayload(1), { keep: 5 });
    const torn = await writeCheckpoint(dir, buildPayload(2), { keep: 5 });
    await mkdir(join(dir, `.tmp-step-00000003-${DEAD_PID}-abcdef`)); // a killed writer's leftovers
    await tear(torn);
    t.is(await findLatestCheckpoint(dir), join(dir, 'step-00000001'));
    const err = await t.throwsAsync(readCheckpoint(torn), { instanceOf: CheckpointError, message });
    t.true(err.message.includes(join(torn, file)));
    t.truthy(await readCheckpoint(join(dir, 'step-00000001')));
  });
}

test("checkpoint - the next write prunes stale temp folders but not a live writer's", async (t) => {
  const { dir, cleanup } = await tempDir();
  t.teardown(cleanup);
  await writeCheckpoint(dir, buildPayload(1), { keep: 5 });
  const stale = `.tmp-step-00000002-${DEAD_PID}-abcdef`;
  const ownStale = `.tmp-step-00000002-${process.pid}-abcdef`; // a previous incarnation with our pid
  const live = `.tmp-step-00000002-${process.ppid}-abcdef`;
  const staleLatest = `.latest.tmp-${DEAD_PID}-123`;
  for (const d of [stale, ownStale, live]) await mkdir(join(dir, d));
  await writeFile(join(dir, staleLatest), 'step-0000');
  await writeCheckpoint(dir, buildPayload(2), { keep: 5 });
  t.deepEqual((await readdir(dir)).sort(), [live, 'latest', 'step-00000001', 'step-00000002'].sort());
});

test('checkpoint - a .replaced copy left by a killed writer is found and restored', async (t) => {
  const { dir, cleanup } = await tempDir();
  t.teardown(cleanup);
  await writeCheckpoint(dir, buildPayload(1), { keep: 5 });
  await writeCheckpoint(dir, buildPayload(2), { keep: 5 });
  // Killed between "rename step-2 aside" and "rename the new temp folder to step-2".
  const aside = join(dir, `.replaced-step-00000002-${DEAD_PID}-abcdef`);
  await rename(join(dir, 'step-00000002'), aside);
  t.is(await findLatestCheckpoint(dir), aside);
  await writeCheckpoint(dir, buildPayload(1), { keep: 5 }); // a later writer restores it while pruning
  t.deepEqual((await readdir(dir)).sort(), ['latest', 'step-00000001', 'step-00000002']);
});

const mismatches: ReadonlyArray<readonly [string, Partial<typeof MICRO>, RegExp]> = [
  ['nEmbd', { nEmbd: 64 }, /checkpoint has architecture nEmbd=32, this run expects nEmbd=64/],
  ['nLayer', { nLayer: 3 }, /checkpoint has architecture nLayer=2, this run expects nLayer=3/],
];
for (const [field, change, message] of mismatches) {
  test(`checkpoint - architecture mismatch (${field}) names the field`, async (t) => {
    const { dir, cleanup } = await tempDir();
    t.teardown(cleanup);
    const path = await writeCheckpoint(dir, buildPayload(1), { keep: 1 });
    await t.throwsAsync(readCheckpoint(path, { layout: new ParamLayout({ ...MICRO, ...change }) }), { instanceOf: CheckpointError, message });
  });
}

test('checkpoint - config hash mismatch lists the changed keys', async (t) => {
  const { dir, cleanup } = await tempDir();
  t.teardown(cleanup);
  const path = await writeCheckpoint(dir, buildPayload(1), { keep: 1 });
  const current = { ...RUN_CONFIG, lr: 1e-4, optimizer: { kind: 'adamw', beta1: 0.95 }, seed: 3 };
  const err = await t.throwsAsync(readCheckpoint(path, { configHash: 'hash-b', config: current }), { instanceOf: CheckpointError });
  t.regex(
    err.message,
    /trainer-state\.json: config hash hash-a differs from this run's hash-b; changed: lr \(0\.0003 -> 0\.0001\), optimizer\.beta1 \(0\.9 -> 0\.95\), seed \(unset -> 3\)/,
  );
  await t.notThrowsAsync(readCheckpoint(path, { configHash: 'hash-a' }));
});

test('checkpoint - refuses a step that does not fit the folder name', (t) => {
  t.throws(() => stepDirName(100_000_000), { instanceOf: RangeError });
  t.is(stepDirName(42), 'step-00000042');
});
