/**
 * A real GMT fine-tune of the bundled base model on the synthetic arithmetic task raises held-out
 * exact-match accuracy over the base model. The evaluation (200 held-out problems of seed 42,
 * greedy decoding, exact match after whitespace normalisation) was fixed before looking at results.
 */
import test from 'ava';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TrainerConfigSchema } from '../../../contract/config.js';
import { createLogger } from '../../../trainer/src/log.js';
import { runTraining } from '../../../trainer/src/train/run.js';

test('finetune - GMT on the bundled base model raises held-out exact match', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'gmt-finetune-'));
  try {
    const config = Object.freeze(
      TrainerConfigSchema.parse({
        method: 'gmt',
        maskRatio: 0.2,
        steps: 80,
        lr: 3e-3,
        microBatchSize: 16,
        seqLen: 32,
        backend: 'wasm',
        evalExamples: 200,
        maxNewTokens: 4,
        checkpointDir: dir,
        resume: 'never',
        progress: 'none',
      }),
    );
    const lines: string[] = [];
    const s = await runTraining(config, { log: createLogger('text', {}, (l) => lines.push(l)) });
    const before = s.before!.exactMatch,
      after = s.after.exactMatch;
    t.log(
      `exact match ${(100 * before).toFixed(1)}% → ${(100 * after).toFixed(1)}% over ${s.after.examples} held-out problems; held-out loss ${s.before!.loss.toFixed(3)} → ${s.after.loss.toFixed(3)}; ${s.trainSeconds.toFixed(1)} s of training`,
    );
    t.is(s.after.examples, 200);
    t.true(after > before, `exact match did not rise: ${before} → ${after}`);
    t.true(s.after.loss < s.before!.loss);
    t.true(s.keptRatio > 0.75 && s.keptRatio < 0.9, `kept ratio ${s.keptRatio}`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
