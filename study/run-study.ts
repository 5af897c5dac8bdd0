/**
 * `npm run study`: the paper's comparisons at small scale (docs/study.md). Fine-tunes the bundled
 * base model (trainer/assets/base-tiny, pretrained by `npm run pretrain`) on two synthetic task
 * families with SFT, GMT, Random Mask, HFT and One-off Drop over several seeds; a GMT mask-ratio
 * sweep; dropping trivial / salient / random deltas after SFT; speed and FLOPs of SFT, Random and
 * GMT from the same interleaved runs; ablations (mask scope, mask mode, 1 vs 2 vs 4 ranks).
 * Writes docs/study/results.json after every experiment, then docs/study.md and SVG plots
 * (study/report.ts). `--full`: longer fine-tunes, 5 seeds, more eval examples.
 * `--only main,sweep,drop,ablation,ranks` runs a subset (merging into an existing results file).
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TrainerConfigSchema, type TrainerConfig } from '../contract/config.js';
import {
  createTokenizer,
  generateCorpus,
  parseSyntheticTask,
  splitTrainEval,
  writeJsonl,
  type SyntheticProblem,
  type SyntheticTask,
} from '../trainer/src/data/index.js';
import { loadModelWeights } from '../trainer/src/checkpoint/index.js';
import { createLogger } from '../trainer/src/log.js';
import { trainFlopsPerToken } from '../trainer/src/model/config.js';
import { Gpt2Model } from '../trainer/src/model/gpt2.js';
import { PRETRAIN_DEFAULTS } from '../trainer/src/pretrain.js';
import { Rng, deriveSeed } from '../trainer/src/rng.js';
import { evaluate } from '../trainer/src/train/evaluate.js';
import { loadBase, runTraining } from '../trainer/src/train/run.js';
import { loadRunData, parseSyntheticSpec } from '../trainer/src/train/sources.js';
import { writeReport } from './report.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const SMOKE = process.argv.includes('--smoke'); // a seconds-long check of the plumbing, written to a temp dir
const OUT_DIR = SMOKE ? join(tmpdir(), 'gmt-study-smoke') : join(ROOT, 'docs/study');
const MD = SMOKE ? join(OUT_DIR, 'study.md') : join(ROOT, 'docs/study.md');
const RESULTS = join(OUT_DIR, 'results.json');

// ---- the protocol (fixed before any result was seen; see docs/study.md "Protocol") --------------
const FULL = process.argv.includes('--full');
const onlyArg =
  process.argv.find((a) => a.startsWith('--only='))?.slice(7) ??
  (process.argv.includes('--only') ? process.argv[process.argv.indexOf('--only') + 1] : undefined);
const ONLY = new Set((onlyArg ?? 'main,ablation,sweep,drop,ranks').split(','));

export const PROTOCOL = {
  profile: FULL ? 'full' : SMOKE ? 'smoke' : 'default',
  baseModel: 'bundled (trainer/assets/base-tiny: GPT-2 4 layers, d=96, byte tokenizer, 478,464 parameters)',
  tasks: {
    arithmetic: 'synthetic:arithmetic?minSteps=2&maxSteps=3',
    symbolic: 'synthetic:symbolic?minLength=3&maxLength=4',
  } as Record<string, string>,
  splitSeed: 1000,
  trainSize: 1500,
  evalSize: FULL ? 500 : SMOKE ? 16 : 200,
  seeds: FULL ? [1, 2, 3, 4, 5] : SMOKE ? [1, 2] : [1, 2, 3],
  steps: FULL ? 300 : SMOKE ? 2 : 60,
  lr: 2e-3,
  seqLen: 32,
  microBatchSize: 16,
  maskRatio: 0.2,
  maxNewTokens: 8,
  methods: ['sft', 'gmt', 'random', 'hft', 'oneoff'] as const,
  sweepRatios: SMOKE ? [0.2, 0.99] : [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99],
  dropRatios: SMOKE ? [0.5] : [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9],
  ranks: { steps: SMOKE ? 2 : 10, microBatchSize: 4, globalMicroBatches: 4 },
};

type Json = Record<string, unknown>;
const silent = createLogger('text', {}, () => {});
const t0 = Date.now();
const elapsed = (): string => {
  const s = Math.round((Date.now() - t0) / 1000);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
};
const say = (line: string): void => {
  process.stdout.write(`[study ${elapsed()}] ${line}\n`);
};
const pct = (x: number): string => `${(100 * x).toFixed(1)}%`;

/** The pretraining corpus lines exactly as `npm run pretrain` builds them (to keep them out of eval). */
function pretrainLines(): Set<string> {
  const fineTune = parseSyntheticSpec('synthetic:arithmetic', 'trainData')!;
  const heldOut = splitTrainEval(42, fineTune, { trainCount: 0, evalCount: 200 }).eval.map((p) => p.prompt);
  const tasks = [parseSyntheticTask({ kind: 'arithmetic', options: { minSteps: 1, maxSteps: 1 } }), parseSyntheticTask({ kind: 'symbolic', options: {} })];
  return new Set(
    generateCorpus(PRETRAIN_DEFAULTS.seed, {
      documents: PRETRAIN_DEFAULTS.documents,
      linesPerDocument: 1,
      tasks,
      exclude: new Set(heldOut),
      freeTextRate: 0.4,
    }),
  );
}

/** Fixed train / held-out JSONL files of a task; held-out problems seen in pretraining are removed. */
async function taskFiles(dir: string, name: string, task: SyntheticTask, corpus: Set<string>): Promise<{ train: string; eval: string; leaked: number }> {
  const extra = 400;
  const split = splitTrainEval(PROTOCOL.splitSeed, task, { trainCount: PROTOCOL.trainSize, evalCount: PROTOCOL.evalSize + extra });
  const clean = split.eval.filter((p) => !corpus.has(p.prompt + p.completion));
  const leaked = split.eval.slice(0, PROTOCOL.evalSize).filter((p) => corpus.has(p.prompt + p.completion)).length;
  if (clean.length < PROTOCOL.evalSize) throw new Error(`${name}: only ${clean.length} held-out problems unseen in pretraining`);
  const rec = (ps: readonly SyntheticProblem[]) => ps.map((p) => ({ prompt: p.prompt, completion: p.completion }));
  const train = join(dir, `${name}-train.jsonl`),
    evalPath = join(dir, `${name}-eval.jsonl`);
  await writeJsonl(train, rec(split.train));
  await writeJsonl(evalPath, rec(clean.slice(0, PROTOCOL.evalSize)));
  return { train, eval: evalPath, leaked };
}

function config(work: string, files: { train: string; eval: string }, over: Partial<TrainerConfig>): TrainerConfig {
  return Object.freeze(
    TrainerConfigSchema.parse({
      runName: 'study',
      backend: 'wasm',
      baseModel: 'bundled',
      tokenizer: 'byte',
      trainData: files.train,
      evalData: files.eval,
      seqLen: PROTOCOL.seqLen,
      microBatchSize: PROTOCOL.microBatchSize,
      steps: PROTOCOL.steps,
      lr: PROTOCOL.lr,
      maskRatio: PROTOCOL.maskRatio,
      evalExamples: PROTOCOL.evalSize,
      maxNewTokens: PROTOCOL.maxNewTokens,
      progress: 'none',
      resume: 'never',
      keepCheckpoints: 1,
      checkpointDir: join(work, 'ckpt', `run-${Math.random().toString(36).slice(2)}`),
      ...over,
    }),
  );
}

interface RunRecord extends Json {
  task: string;
  method: string;
  seed: number;
  maskRatio: number;
  maskScope: string;
  maskMode: string;
  exactMatch: number;
  loss: number;
  trainSeconds: number;
  stepSeconds: number;
  tokensPerStep: number;
  flopsPerStep: number;
  keptRatio: number;
  finalTrainLoss: number;
}

let runCounter = 0;
async function fineTune(
  work: string,
  files: { train: string; eval: string },
  task: string,
  over: Partial<TrainerConfig>,
  label: string,
): Promise<{ rec: RunRecord; params: Float32Array }> {
  const c = config(work, files, over);
  const s = await runTraining(c, { log: silent, skipEvalBefore: true });
  await rm(c.checkpointDir, { recursive: true, force: true });
  const tokensPerStep = (s.tokensPerSecond * s.trainSeconds) / s.steps;
  const rec: RunRecord = {
    task,
    method: c.method,
    seed: c.seed,
    maskRatio: c.maskRatio,
    maskScope: c.maskScope,
    maskMode: c.maskMode,
    exactMatch: s.after.exactMatch,
    loss: s.after.loss,
    trainSeconds: s.trainSeconds,
    stepSeconds: s.trainSeconds / s.steps,
    tokensPerStep,
    flopsPerStep: tokensPerStep * trainFlopsPerToken(s.modelConfig, c.seqLen),
    keptRatio: s.keptRatio,
    finalTrainLoss: s.finalLoss,
  };
  runCounter++;
  say(`run ${runCounter} ${label}: EM ${pct(rec.exactMatch)} · held-out loss ${rec.loss.toFixed(4)} · ${rec.stepSeconds.toFixed(3)} s/step`);
  return { rec, params: s.params };
}

/** Reset a fraction of delta parameters per tensor: the smallest |δ| (trivial), largest (salient) or random ones. */
function dropDeltas(
  layout: Gpt2Model['layout'],
  base: Float32Array,
  tuned: Float32Array,
  ratio: number,
  kind: 'trivial' | 'salient' | 'random',
  seed: number,
): Float32Array {
  const out = tuned.slice();
  for (const [slotIndex, slot] of layout.slots.entries()) {
    const n = slot.size,
      k = Math.round(ratio * n);
    if (k === 0) continue;
    const idx = Array.from({ length: n }, (_, i) => i);
    if (kind === 'random') new Rng(deriveSeed(seed, 'drop', slotIndex)).shuffle(idx);
    else {
      const d = new Float32Array(n);
      for (let i = 0; i < n; i++) d[i] = Math.abs(tuned[slot.offset + i]! - base[slot.offset + i]!);
      idx.sort((a, b) => (kind === 'trivial' ? d[a]! - d[b]! || a - b : d[b]! - d[a]! || a - b));
    }
    for (let j = 0; j < k; j++) out[slot.offset + idx[j]!] = base[slot.offset + idx[j]!]!;
  }
  return out;
}

async function loadResults(): Promise<Json> {
  return existsSync(RESULTS) ? (JSON.parse(await readFile(RESULTS, 'utf8')) as Json) : {};
}

async function save(results: Json): Promise<void> {
  await mkdir(OUT_DIR, { recursive: true });
  await writeFile(RESULTS, JSON.stringify(results, null, 1) + '\n');
}

function sha256(path: string): Promise<string> {
  return readFile(path).then((b) => createHash('sha256').update(b).digest('hex'));
}

async function finalModel(dir: string): Promise<string> {
  const steps = (await readdir(dir)).filter((d) => d.startsWith('step-')).sort();
  return join(dir, steps[steps.length - 1]!, 'model.safetensors');
}

async function main(): Promise<void> {
  const work = await mkdtemp(join(tmpdir(), 'gmt-study-'));
  const results = ONLY.size === 5 ? {} : await loadResults();
  const started = new Date().toISOString();
  try {
    const corpus = pretrainLines();
    const files: Record<string, { train: string; eval: string; leaked: number }> = {};
    for (const [name, spec] of Object.entries(PROTOCOL.tasks)) files[name] = await taskFiles(work, name, parseSyntheticSpec(spec, 'trainData')!, corpus);
    const protocol: Json = {
      ...PROTOCOL,
      heldOutSeenInPretraining: Object.fromEntries(Object.entries(files).map(([k, v]) => [k, v.leaked])),
      node: process.version,
      cpus: (await import('node:os')).cpus().length,
    };
    Object.assign(results, { protocol, started });
    say(
      `profile ${PROTOCOL.profile}: ${PROTOCOL.steps} steps, seeds ${PROTOCOL.seeds.join(',')}, ${PROTOCOL.evalSize} held-out problems per task, mask ratio ${PROTOCOL.maskRatio}`,
    );

    // Base model (no fine-tuning) on each task.
    const tokenizer = createTokenizer('byte');
    const evalWith = async (taskName: string, params: Float32Array | undefined) => {
      const c = config(work, files[taskName]!, {});
      const base = await loadBase(c);
      const model = new Gpt2Model(base.modelConfig);
      const data = await loadRunData(c, tokenizer);
      return { base, model, run: (p: Float32Array) => evaluate(model, p, tokenizer, data.eval, data.evalItems, c.maxNewTokens, 16), params };
    };
    const anyCfg = config(work, files.arithmetic!, {});
    await (await import('../trainer/src/backend.js')).initBackend(anyCfg.backend);

    let sftParams: Float32Array | undefined;
    if (ONLY.has('main')) {
      const baseEval: Json = {};
      for (const t of Object.keys(PROTOCOL.tasks)) {
        const e = await evalWith(t, undefined);
        const r = e.run(e.base.params);
        baseEval[t] = { exactMatch: r.exactMatch, loss: r.loss };
        say(`base model on ${t}: EM ${pct(r.exactMatch)} · held-out loss ${r.loss.toFixed(4)}`);
      }
      results.base = baseEval;
      const runs: RunRecord[] = [];
      results.main = runs;
      for (const seed of PROTOCOL.seeds) {
        for (const t of Object.keys(PROTOCOL.tasks)) {
          for (const method of PROTOCOL.methods) {
            const { rec, params } = await fineTune(work, files[t]!, t, { method, seed }, `main ${t} ${method} seed ${seed}`);
            runs.push(rec);
            if (t === 'arithmetic' && method === 'sft' && seed === PROTOCOL.seeds[0]) sftParams = params;
          }
          await save(results);
        }
      }
    }

    if (ONLY.has('ablation')) {
      const runs: RunRecord[] = [];
      results.ablation = runs;
      for (const seed of PROTOCOL.seeds) {
        for (const over of [{ maskScope: 'global' as const }, { maskMode: 'gradient' as const }]) {
          const { rec } = await fineTune(
            work,
            files.arithmetic!,
            'arithmetic',
            { method: 'gmt', seed, ...over },
            `ablation arithmetic gmt ${JSON.stringify(over)} seed ${seed}`,
          );
          runs.push(rec);
        }
        await save(results);
      }
    }

    if (ONLY.has('sweep')) {
      const seed = PROTOCOL.seeds[0]!;
      const runs: RunRecord[] = [];
      results.sweep = runs;
      const reuse = ((results.main ?? []) as RunRecord[]).find(
        (r) => r.task === 'arithmetic' && r.method === 'gmt' && r.seed === seed && r.maskRatio === PROTOCOL.maskRatio,
      );
      for (const maskRatio of PROTOCOL.sweepRatios) {
        if (reuse !== undefined && maskRatio === PROTOCOL.maskRatio) {
          runs.push(reuse);
          continue;
        }
        const { rec } = await fineTune(
          work,
          files.arithmetic!,
          'arithmetic',
          { method: 'gmt', seed, maskRatio },
          `sweep arithmetic gmt ratio ${maskRatio} seed ${seed}`,
        );
        runs.push(rec);
        await save(results);
      }
      await save(results);
    }

    if (ONLY.has('drop')) {
      const seed = PROTOCOL.seeds[0]!;
      if (sftParams === undefined)
        sftParams = (await fineTune(work, files.arithmetic!, 'arithmetic', { method: 'sft', seed }, `drop: SFT arithmetic seed ${seed}`)).params;
      const e = await evalWith('arithmetic', undefined);
      const rows: Json[] = [];
      results.drop = { task: 'arithmetic', seed, sftExactMatch: e.run(sftParams).exactMatch, rows };
      for (const ratio of PROTOCOL.dropRatios) {
        for (const kind of ['trivial', 'salient', 'random'] as const) {
          const r = e.run(dropDeltas(e.model.layout, e.base.params, sftParams, ratio, kind, seed));
          rows.push({ ratio, kind, exactMatch: r.exactMatch, loss: r.loss });
          say(`drop ${kind} ${Math.round(ratio * 100)}% of SFT deltas: EM ${pct(r.exactMatch)} · held-out loss ${r.loss.toFixed(4)}`);
        }
        await save(results);
      }
    }

    if (ONLY.has('ranks')) {
      const { steps, microBatchSize, globalMicroBatches } = PROTOCOL.ranks;
      const rows: Json[] = [];
      results.ranks = { steps, microBatchSize, globalMicroBatches, rows };
      const main = join(ROOT, 'dist/trainer/src/main.js');
      let reference: Float32Array | undefined;
      for (const n of [1, 2, 4]) {
        const dir = join(work, `ranks-${n}`);
        const args = [
          main,
          '--backend',
          'wasm',
          '--train-data',
          files.arithmetic!.train,
          '--eval-data',
          files.arithmetic!.eval,
          '--method',
          'gmt',
          '--mask-ratio',
          String(PROTOCOL.maskRatio),
          '--seed',
          String(PROTOCOL.seeds[0]),
          '--steps',
          String(steps),
          '--lr',
          String(PROTOCOL.lr),
          '--seq-len',
          String(PROTOCOL.seqLen),
          '--micro-batch-size',
          String(microBatchSize),
          '--accum-steps',
          String(globalMicroBatches / n),
          '--eval-examples',
          '16',
          '--max-new-tokens',
          '2',
          '--checkpoint-dir',
          dir,
          '--resume',
          'never',
          '--progress',
          'none',
          '--job-id',
          `study-ranks-${n}`,
          ...(n > 1 ? ['--workers', String(n)] : []),
        ];
        const ts = Date.now();
        const p = spawnSync(process.execPath, args, { encoding: 'utf8', timeout: 600_000, cwd: ROOT });
        const seconds = (Date.now() - ts) / 1000;
        if (p.status !== 0) {
          rows.push({
            ranks: n,
            ok: false,
            exitCode: p.status,
            seconds,
            error: p.stderr
              .split('\n')
              .filter((l) => l.trim() !== '')
              .slice(-5)
              .join('\n'),
          });
          say(`ranks ${n}: FAILED (exit ${p.status})`);
          continue;
        }
        const file = await finalModel(dir);
        const hash = await sha256(file);
        const params = (await loadModelWeights(dirname(file))).params;
        reference ??= params;
        let maxAbs = 0,
          diff2 = 0,
          ref2 = 0;
        for (let i = 0; i < params.length; i++) {
          const d = params[i]! - reference[i]!;
          maxAbs = Math.max(maxAbs, Math.abs(d));
          diff2 += d * d;
          ref2 += reference[i]! ** 2;
        }
        rows.push({
          ranks: n,
          ok: true,
          accumSteps: globalMicroBatches / n,
          sha256: hash,
          seconds,
          maxAbsDiffVs1: maxAbs,
          relL2DiffVs1: Math.sqrt(diff2 / ref2),
        });
        say(
          `ranks ${n} (accum ${globalMicroBatches / n}): model.safetensors sha256 ${hash.slice(0, 16)}… max |Δθ| vs 1 rank ${maxAbs.toExponential(2)} (${seconds.toFixed(1)} s)`,
        );
      }
      const hashes = rows.filter((r) => r.ok).map((r) => r.sha256);
      const identical = hashes.length === 3 && new Set(hashes).size === 1;
      (results.ranks as Json).identical = identical;
      say(`ranks 1/2/4 bit-identical: ${identical}`);
    }
    results.finished = new Date().toISOString();
    results.wallSeconds = (Date.now() - t0) / 1000;
    await save(results);
    await writeReport(results, OUT_DIR, MD);
    say(`done in ${elapsed()}: docs/study.md, docs/study/results.json, docs/study/*.svg`);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().then(
    () => process.exit(0),
    (e: unknown) => {
      process.stderr.write(`[study] ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
      process.exit(1);
    },
  );
}
