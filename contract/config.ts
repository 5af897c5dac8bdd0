/**
 * The trainer's configuration: one flat block of defaults, one line of meaning each. Resolved as
 * defaults ← config file (GMT_CONFIG / --config) ← environment (docs/architecture.md §4) ← CLI flags, then
 * frozen, logged once and embedded in every checkpoint (trainer/src/config/load.ts). Each field's
 * `.describe()` is its one-line meaning: the single source of `gmt-train --help`, docs/config.md and
 * the CRD's descriptions (trainer/src/config/describe.ts). The operator's
 * GmtFineTune spec reuses these field schemas, so the API server never accepts a value the trainer
 * would reject (operator/src/api/spec.ts; spec-to-config.ts maps spec fields to these keys).
 */
import { z } from 'zod';

const nonEmpty = z.string().min(1);

/** The schema; `.parse` of a partial object fills in every default. */
export const TrainerConfigSchema = z
  .strictObject({
    // ---- run -------------------------------------------------------------------------------------
    runName: nonEmpty
      .regex(/^[A-Za-z0-9._-]+$/, 'letters, digits, ".", "_" and "-" only')
      .default('gmt-run')
      .describe('names the run in logs and metrics'),
    seed: z
      .number()
      .int()
      .min(0)
      .max(2 ** 31 - 1)
      .default(42)
      .describe('every random choice derives from it'),
    backend: z.enum(['auto', 'tensorflow', 'wasm', 'cpu']).default('auto').describe('TensorFlow.js backend (auto: native GPU > native CPU > wasm > cpu)'),
    threads: z.number().int().min(0).max(4096).default(0).describe('native TensorFlow kernel threads; 0 = every core the process/pod is given'),
    deterministic: z.boolean().default(true).describe("GPU: TensorFlow's deterministic kernels (bit-identical ranks/resume; slower)"),
    fusedKernels: z
      .boolean()
      .default(true)
      .describe("native CPU: GMT's fused GELU, LayerNorm and causal-softmax kernels (false: TensorFlow's own, ~25% slower)"),
    // ---- model and data --------------------------------------------------------------------------
    baseModel: nonEmpty.default('bundled').describe('"bundled", a checkpoint dir, a model.safetensors path, or "none" (fresh init)'),
    modelPreset: z.enum(['micro', 'tiny', 'small', 'gpt2']).default('tiny').describe('architecture when baseModel is "none"'),
    tokenizer: z.enum(['byte', 'gpt2']).default('byte').describe('byte-level (tiny models) or GPT-2 BPE'),
    trainData: nonEmpty.default('synthetic:arithmetic').describe('a JSONL file, or synthetic:<task>'),
    evalData: nonEmpty.optional().describe("a JSONL file or synthetic:<task>; default: the held-out split of trainData's task"),
    syntheticTrainSize: z.number().int().min(1).max(10_000_000).default(1500).describe('examples generated for synthetic training data'),
    syntheticEvalSize: z.number().int().min(1).max(1_000_000).default(200).describe('held-out synthetic examples'),
    seqLen: z.number().int().min(2).max(65_536).default(64).describe("tokens per training sequence (≤ the model's nPositions)"),
    // ---- method (docs/architecture.md §2) ----------------------------------------------------------------
    method: z
      .enum(['gmt', 'sft', 'random', 'hft', 'oneoff'])
      .default('gmt')
      .describe('fine-tuning method: gmt (gradient-mask tuning), sft, random (random mask), hft (half fine-tuning), oneoff (one-off drop)'),
    maskRatio: z
      .number()
      .min(0)
      .lt(1, 'maskRatio must be < 1 (it is the fraction dropped)')
      .default(0.2)
      .describe('fraction of entries dropped per scope (the paper uses 0.1-0.4)'),
    maskScope: z.enum(['tensor', 'global']).default('tensor').describe('a threshold per tensor, or one over all parameters'),
    maskMode: z
      .enum(['update', 'gradient'])
      .default('update')
      .describe('update: masked parameters and their optimizer state do not change (the paper); gradient: zero masked gradients'),
    tieRule: z.enum(['all', 'exact']).default('all').describe('keep every tie at T_k (paper) or exactly k by flat index'),
    oneoffMode: z.enum(['magnitude', 'dare']).default('magnitude').describe('one-off drop: smallest |delta|, or random with rescale'),
    // ---- optimisation ----------------------------------------------------------------------------
    optimizer: z.enum(['adamw', 'sgd']).default('adamw').describe('optimizer: adamw or sgd'),
    lr: z.number().positive('lr must be positive').max(10).default(1e-3).describe('peak learning rate'),
    beta1: z.number().min(0).lt(1).default(0.9).describe('AdamW β1'),
    beta2: z.number().min(0).lt(1).default(0.999).describe('AdamW β2'),
    eps: z.number().positive().default(1e-8).describe('AdamW ε'),
    weightDecay: z.number().min(0).max(1).default(0).describe('decoupled weight decay (AdamW) or L2 (SGD); paper: 0'),
    momentum: z.number().min(0).lt(1).default(0).describe('SGD momentum'),
    schedule: z.enum(['cosine', 'linear', 'constant']).default('cosine').describe('learning-rate decay after warm-up'),
    warmupRatio: z.number().min(0).max(1).default(0.03).describe('fraction of steps of linear warm-up'),
    minLrRatio: z.number().min(0).max(1).default(0).describe('floor of the decay as a fraction of lr'),
    maxGradNorm: z.number().min(0).default(1).describe('global-norm clipping of Γ before masking (0 = off)'),
    microBatchSize: z.number().int().min(1).max(65_536).default(16).describe('sequences per micro-batch per rank'),
    accumSteps: z.number().int().min(1).max(65_536).default(1).describe('micro-batches per optimizer step per rank'),
    steps: z.number().int().min(1).max(100_000_000).default(300).describe('optimizer steps'),
    nonFinite: z.enum(['error', 'skip']).default('skip').describe('NaN/Inf in Γ: fail, or skip the step (counted)'),
    maxSkippedSteps: z.number().int().min(0).default(10).describe('more skipped steps than this is an error'),
    // ---- evaluation ------------------------------------------------------------------------------
    evalEvery: z.number().int().min(0).default(0).describe('evaluate every N steps (0: only before and after)'),
    evalExamples: z.number().int().min(1).default(200).describe('held-out examples for exact match'),
    maxNewTokens: z.number().int().min(1).max(4096).default(8).describe('greedy generation budget per answer'),
    // ---- checkpoints -----------------------------------------------------------------------------
    checkpointDir: nonEmpty.default('runs/gmt-run').describe('where step-NNNNNNNN/ checkpoints go'),
    checkpointEvery: z.number().int().min(0).default(0).describe('checkpoint every N steps (0: only at the end)'),
    keepCheckpoints: z.number().int().min(1).default(2).describe('older checkpoints are deleted'),
    resume: z.enum(['auto', 'never', 'must']).default('auto').describe('resume from the latest checkpoint in checkpointDir'),
    // ---- observability ---------------------------------------------------------------------------
    metricsPort: z.number().int().min(0).max(65_535).default(0).describe('Prometheus /metrics port (0 = off)'),
    progress: z.enum(['auto', 'bar', 'plain', 'none']).default('auto').describe('progress bar on a TTY, lines otherwise'),
    logFormat: z.enum(['text', 'json']).default('text').describe('log lines on stderr'),
    // ---- data parallelism (docs/architecture.md §3-4) ----------------------------------------------------
    jobId: nonEmpty
      .regex(/^[a-z0-9-]+$/, 'lowercase letters, digits and "-" only')
      .default('local')
      .describe('namespaces NATS subjects'),
    rank: z.number().int().min(0).default(0).describe("this process's rank"),
    worldSize: z.number().int().min(1).max(1024).default(1).describe('number of ranks'),
    attempt: z.number().int().min(0).default(0).describe('gang attempt (restarts increment it)'),
    natsUrl: z.string().default('').describe('NATS server URL (empty: single process)'),
    natsCreds: z.string().default('').describe('path of a NATS .creds file (empty: no authentication)'),
    collective: z.enum(['sharded', 'dense']).default('sharded').describe('reference protocol, or dense all-reduce (testing)'),
    hashEvery: z.number().int().min(0).default(10).describe('compare a parameter hash across ranks every K steps (0 = never)'),
    rendezvousTimeoutSec: z.number().positive().default(120).describe('all ranks must join within this time'),
    stepTimeoutSec: z.number().positive().default(300).describe('a collective phase waiting longer aborts the step'),
    heartbeatMs: z.number().int().positive().default(1000).describe('peer liveness messages'),
    peerTimeoutMs: z.number().int().positive().default(30_000).describe('a silent peer aborts the step (generous: TF.js compute blocks the event loop)'),
    workers: z.number().int().min(0).max(64).default(0).describe('local launcher: start N rank processes and an embedded nats-server (0: run in this process)'),
  })
  .superRefine((c, ctx) => {
    if (c.rank >= c.worldSize) ctx.addIssue({ code: 'custom', path: ['rank'], message: `rank ${c.rank} must be < worldSize ${c.worldSize}` });
    if (c.worldSize > 1 && c.natsUrl === '') ctx.addIssue({ code: 'custom', path: ['natsUrl'], message: 'worldSize > 1 needs natsUrl' });
  });

/** A fully resolved, frozen configuration. */
export type TrainerConfig = Readonly<z.infer<typeof TrainerConfigSchema>>;

/** The keys of the configuration. */
export type ConfigKey = keyof z.infer<typeof TrainerConfigSchema>;

/** Keys that do not change the numbers a run produces (excluded from the config hash). */
export const NON_NUMERIC_KEYS: ReadonlySet<ConfigKey> = new Set<ConfigKey>([
  'runName',
  'backend',
  'threads',
  'deterministic',
  'fusedKernels',
  'checkpointDir',
  'checkpointEvery',
  'keepCheckpoints',
  'resume',
  'metricsPort',
  'progress',
  'logFormat',
  'jobId',
  'rank',
  'attempt',
  'natsUrl',
  'natsCreds',
  'evalEvery',
  'evalExamples',
  'maxNewTokens',
  'collective',
  'hashEvery',
  'rendezvousTimeoutSec',
  'stepTimeoutSec',
  'heartbeatMs',
  'peerTimeoutMs',
  'workers',
  'worldSize',
]);
