/**
 * `gmt-train pretrain`: makes the bundled base model (trainer/assets/base-tiny). A fresh `tiny`
 * byte-level GPT-2 is trained with plain next-token loss on a synthetic corpus: free text plus solved
 * one-step arithmetic and symbolic problems. It learns the formats but has never seen multi-step
 * problems solved, so fine-tuning on the default task (1-2 step arithmetic) has something to teach.
 * Deterministic by seed; reproduce the committed model with `npm run pretrain`.
 */
import { copyFile, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TrainerConfigSchema, type TrainerConfig } from '../../contract/config.js';
import { generateCorpus, parseSyntheticTask, splitTrainEval, writeJsonl } from './data/index.js';
import type { Logger } from './log.js';
import { BUNDLED_BASE_MODEL } from './paths.js';
import { parseSyntheticSpec } from './train/sources.js';
import { runTraining } from './train/run.js';

/** Pretraining settings (CLI flags of `gmt-train pretrain`). */
export interface PretrainOptions {
  readonly out: string;
  readonly steps: number;
  readonly documents: number;
  readonly seed: number;
  readonly backend: TrainerConfig['backend'];
  readonly progress: TrainerConfig['progress'];
}

/** Defaults reproducing the committed base model. */
export const PRETRAIN_DEFAULTS: PretrainOptions = { out: BUNDLED_BASE_MODEL, steps: 600, documents: 30000, seed: 7, backend: 'auto', progress: 'auto' };

/** Build the corpus, train, and copy model.safetensors + config.json to `out`. */
export async function pretrain(o: PretrainOptions, log: Logger): Promise<string> {
  const work = await mkdtemp(join(tmpdir(), 'gmt-pretrain-'));
  try {
    // The held-out problems of the default fine-tuning task (seed 42 and 200 examples, the demo's
    // defaults) never enter the corpus. One-step problems are few (about 135), so this matters.
    const fineTune = parseSyntheticSpec('synthetic:arithmetic', 'trainData')!;
    const heldOut = splitTrainEval(42, fineTune, { trainCount: 0, evalCount: 200 }).eval.map((p) => p.prompt);
    const tasks = [parseSyntheticTask({ kind: 'arithmetic', options: { minSteps: 1, maxSteps: 1 } }), parseSyntheticTask({ kind: 'symbolic', options: {} })];
    const docs = generateCorpus(o.seed, { documents: o.documents, linesPerDocument: 1, tasks, exclude: new Set(heldOut), freeTextRate: 0.4 });
    const corpus = join(work, 'corpus.jsonl');
    await writeJsonl(
      corpus,
      docs.map((d) => ({ prompt: '', completion: d })),
    );
    const config = Object.freeze(
      TrainerConfigSchema.parse({
        runName: 'pretrain-base-tiny',
        seed: o.seed,
        backend: o.backend,
        baseModel: 'none',
        modelPreset: 'tiny',
        tokenizer: 'byte',
        trainData: corpus,
        evalData: 'synthetic:arithmetic',
        seqLen: 64,
        method: 'sft',
        optimizer: 'adamw',
        lr: 3e-3,
        warmupRatio: 0.05,
        weightDecay: 0.01,
        microBatchSize: 32,
        steps: o.steps,
        checkpointDir: join(work, 'ckpt'),
        resume: 'never',
        progress: o.progress,
        evalExamples: 200,
        maxNewTokens: 6,
      }),
    );
    const summary = await runTraining(config, { log, skipEvalBefore: true });
    if (summary.lastCheckpoint === undefined) throw new Error('pretraining wrote no checkpoint');
    await mkdir(o.out, { recursive: true });
    for (const f of ['model.safetensors', 'config.json']) await copyFile(join(summary.lastCheckpoint, f), join(o.out, f));
    log.info('base model written', { out: o.out, evalLoss: summary.after.loss, exactMatch: summary.after.exactMatch });
    return o.out;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
