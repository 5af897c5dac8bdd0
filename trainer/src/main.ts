#!/usr/bin/env node
/**
 * gmt-train: the trainer's command line (commander). `gmt-train [options]` fine-tunes;
 * `gmt-train pretrain` makes the bundled base model; `gmt-train generate` and `gmt-train eval` use
 * a checkpoint. The only place that exits the process: exit codes (contract/exit-codes.ts) tell the
 * operator retryable from fatal.
 */
import { fileURLToPath } from 'node:url';
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { Command, CommanderError, Option } from 'commander';
import { EXIT_CODES } from '../../contract/exit-codes.js';
import { ENV, ENV_KEYS } from '../../contract/env.js';
import { TrainerError, ConfigError, DataError } from './errors.js';
import { configKeys, loadConfig } from './config/load.js';
import { fieldDocs, helpText } from './config/describe.js';
import { type TrainerConfig, TrainerConfigSchema } from '../../contract/config.js';
import { createLogger, formatNumber } from './log.js';
import { PRETRAIN_DEFAULTS, pretrain } from './pretrain.js';
import { runTraining, type RunSummary } from './train/run.js';
import { launchLocal } from './launcher.js';
import { initBackend } from './backend.js';
import { createTokenizer, promptIds } from './data/index.js';
import { Gpt2Model } from './model/gpt2.js';
import { Rng } from './rng.js';
import { evaluateLikeTraining, generate, loadForInference } from './inference.js';
import { loadRunData } from './train/sources.js';
import { z } from 'zod';

const EPILOG = `
Configuration: defaults ← JSON file (--config or GMT_CONFIG) ← environment (${Object.keys(ENV_KEYS).join(', ')}) ← flags.
Every flag is a config key in kebab-case; docs/config.md has the same table.

Exit codes: 0 ok, 2 config, 3 data, 4 checkpoint, 5 numeric, 1 internal (not retryable);
75 retryable (peer/collective/NATS lost), 76 interrupted after a checkpoint (retryable).`;

function summaryText(s: RunSummary): string {
  const pct = (x: number | undefined) => (x === undefined || Number.isNaN(x) ? 'n/a' : `${(100 * x).toFixed(1)}%`);
  const b = s.before,
    a = s.after;
  const lines = [
    '',
    `GMT fine-tune finished: ${s.steps} steps on ${s.backend.label} (${s.parameters.toLocaleString('en-US')} parameters)`,
    `  throughput     ${s.samplesPerSecond.toFixed(1)} samples/s · ${Math.round(s.tokensPerSecond)} tokens/s · ${s.trainSeconds.toFixed(1)} s`,
    `  last step      loss ${formatNumber(s.finalLoss)} · kept ${pct(s.keptRatio)} of parameters${s.skippedSteps ? ` · ${s.skippedSteps} skipped` : ''}`,
    '                 before        after',
    `  held-out loss  ${(b ? formatNumber(b.loss) : 'n/a').padEnd(13)} ${formatNumber(a.loss)}`,
    `  exact match    ${pct(b?.exactMatch).padEnd(13)} ${pct(a.exactMatch)}  (${a.examples} held-out examples)`,
    ...a.samples
      .slice(0, 3)
      .map((x) => `    ${x.correct ? '✓' : '✗'} ${JSON.stringify(x.prompt)} → ${JSON.stringify(x.prediction)} (expected ${JSON.stringify(x.reference)})`),
    `  checkpoint     ${s.lastCheckpoint ?? 'none'}${s.resumedFrom ? ` (resumed from ${s.resumedFrom})` : ''}`,
    ...(s.lastCheckpoint
      ? [`  try it         npx gmt-train generate --checkpoint ${s.lastCheckpoint} --prompt ${JSON.stringify(a.samples[0]?.prompt ?? 'Q: 2+3=? A:')}`]
      : []),
  ];
  return lines.join('\n');
}

/** Add every config key as a --kebab-case flag with its meaning, range and default. */
function addConfigOptions(cmd: Command, keys: readonly string[] = configKeys()): Command {
  for (const d of fieldDocs()) if (keys.includes(d.key)) cmd.addOption(new Option(`${d.flag} <value>`, helpText(d)));
  return cmd;
}

/** The config flags that were given (commander's camelCase names → text). */
function givenConfigFlags(opts: Record<string, unknown>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of configKeys()) if (typeof opts[k] === 'string') out[k] = opts[k];
  return out;
}

const nonNegInt =
  (flag: string) =>
  (v: string): number => {
    const n = Number(v);
    if (v.trim() === '' || !Number.isInteger(n) || n < 0) throw new ConfigError(`flag ${flag}: "${v}" is not a non-negative integer`);
    return n;
  };
const nonNegNumber =
  (flag: string) =>
  (v: string): number => {
    const n = Number(v);
    if (v.trim() === '' || !Number.isFinite(n) || n < 0) throw new ConfigError(`flag ${flag}: "${v}" is not a non-negative number`);
    return n;
  };

/** Prompts from --prompt, or from a JSONL file of {"prompt": "..."} records (errors name file:line). */
async function* readPrompts(prompt: string | undefined, file: string | undefined): AsyncGenerator<string> {
  if (prompt !== undefined) yield prompt;
  if (file === undefined) return;
  const lines = createInterface({ input: createReadStream(file), crlfDelay: Infinity });
  let n = 0;
  try {
    for await (const line of lines) {
      n++;
      if (line.trim() === '') continue;
      let json: unknown;
      try {
        json = JSON.parse(line);
      } catch (e) {
        throw new DataError(`${file}:${n}: invalid JSON (${(e as Error).message})`);
      }
      const r = z.looseObject({ prompt: z.string() }).safeParse(json);
      if (!r.success) throw new DataError(`${file}:${n}: expected an object with a "prompt" string`);
      yield r.data.prompt;
    }
  } catch (e) {
    if (e instanceof TrainerError) throw e;
    throw new DataError(`${file}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, { cause: e });
  }
}

/** The configuration to evaluate or generate with: the checkpoint's own, then file, env and flags; one process. */
async function inferenceConfig(trained: Readonly<Record<string, unknown>> | undefined, opts: Record<string, unknown>): Promise<TrainerConfig> {
  const local = { rank: 0, worldSize: 1, natsUrl: '', natsCreds: '', workers: 0, attempt: 0, jobId: 'local' };
  const gang: readonly string[] = [ENV.rank, ENV.worldSize, ENV.natsUrl, ENV.natsCreds, ENV.attempt, ENV.jobId];
  const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !gang.includes(name)));
  return loadConfig(givenConfigFlags(opts), typeof opts['config'] === 'string' ? opts['config'] : undefined, env, { ...(trained ?? {}), ...local });
}

function buildProgram(onStop: () => boolean, setCode: (code: number) => void): Command {
  const program = new Command('gmt-train')
    .description(
      'Gradient-Mask Tuning fine-tuning with TensorFlow.js: fine-tunes the bundled base model (or yours) and reports held-out loss and exact match before and after.',
    )
    .usage('[options]            fine-tune (GMT on the bundled base model by default)\n       gmt-train <command> [options]')
    .showHelpAfterError('(run gmt-train --help for every option)')
    .enablePositionalOptions() // a subcommand's flags belong to it (generate --max-new-tokens is not the training option)
    .showSuggestionAfterError(true)
    .exitOverride()
    .option('--config <file>', 'JSON file of config keys (camelCase), applied before environment and flags');
  addConfigOptions(program);
  program.addHelpText('after', EPILOG);
  program.action(async (opts: Record<string, unknown>) => {
    const config = await loadConfig(givenConfigFlags(opts), typeof opts['config'] === 'string' ? opts['config'] : undefined, process.env);
    const log = createLogger(config.logFormat, config.worldSize > 1 ? { rank: config.rank } : {});
    if (config.workers > 0) {
      setCode(await launchLocal(fileURLToPath(import.meta.url), process.argv.slice(2), config, log));
      return;
    }
    const summary = await runTraining(config, { log, shouldStop: onStop });
    if (config.rank === 0) process.stdout.write(summaryText(summary) + '\n');
  });

  program
    .command('pretrain')
    .description('train the bundled base model from scratch on the synthetic corpus (about 12 minutes on 2 cores)')
    .option('--steps <n>', `optimizer steps [integer ≥ 0; default ${PRETRAIN_DEFAULTS.steps}]`, nonNegInt('--steps'))
    .option('--documents <n>', `corpus documents [integer ≥ 0; default ${PRETRAIN_DEFAULTS.documents}]`, nonNegInt('--documents'))
    .option('--seed <n>', `seed [integer ≥ 0; default ${PRETRAIN_DEFAULTS.seed}]`, nonNegInt('--seed'))
    .option('--out <dir>', 'where model.safetensors and config.json go [default: trainer/assets/base-tiny]')
    .addOption(new Option('--backend <name>', 'TensorFlow.js backend').choices(TrainerConfigSchema.shape.backend.unwrap().options).default('auto'))
    .addOption(new Option('--progress <mode>', 'progress display').choices(TrainerConfigSchema.shape.progress.unwrap().options).default('auto'))
    .action(
      async (o: {
        steps?: number;
        documents?: number;
        seed?: number;
        out?: string;
        backend: TrainerConfig['backend'];
        progress: TrainerConfig['progress'];
      }) => {
        await pretrain({ ...PRETRAIN_DEFAULTS, ...o }, createLogger('text'));
      },
    );

  const gen = program
    .command('generate')
    .description('continue prompts with a checkpoint, streaming tokens to stdout (greedy by default)')
    .requiredOption('--checkpoint <path>', 'a run folder (its latest checkpoint), a step-NNNNNNNN folder, a model.safetensors, or "bundled"')
    .option('--prompt <text>', 'one prompt, e.g. "Q: 12+7=? A:"')
    .option('--prompts <file.jsonl>', 'a JSONL file of {"prompt": "..."} records, one continuation each')
    .option('--max-new-tokens <n>', 'tokens to generate per prompt [integer ≥ 1]', nonNegInt('--max-new-tokens'), 32)
    .option('--temperature <t>', 'sampling temperature; 0 is greedy [number ≥ 0]', nonNegNumber('--temperature'), 0)
    .option('--top-k <k>', 'sample among the k most likely tokens; 0 is all [integer ≥ 0]', nonNegInt('--top-k'), 0)
    .option('--sample-seed <n>', 'seed of the sampler [integer ≥ 0]', nonNegInt('--sample-seed'), 0)
    .addOption(new Option('--stop <at>', 'stop at end-of-sequence only, or also at the first newline').choices(['eos', 'newline']).default('newline'))
    .addOption(
      new Option(fieldDocs().find((d) => d.key === 'tokenizer')!.flag + ' <name>', "tokenizer [default: the checkpoint's, else byte]").choices([
        'byte',
        'gpt2',
      ]),
    )
    .addOption(
      new Option(fieldDocs().find((d) => d.key === 'backend')!.flag + ' <name>', 'TensorFlow.js backend')
        .choices(['auto', 'tensorflow', 'wasm', 'cpu'])
        .default('auto'),
    );
  gen.action(
    async (o: {
      checkpoint: string;
      prompt?: string;
      prompts?: string;
      maxNewTokens: number;
      temperature: number;
      topK: number;
      sampleSeed: number;
      stop: 'eos' | 'newline';
      tokenizer?: 'byte' | 'gpt2';
      backend: TrainerConfig['backend'];
    }) => {
      if (o.prompt === undefined && o.prompts === undefined) throw new ConfigError('generate: give --prompt TEXT or --prompts FILE.jsonl');
      if (o.maxNewTokens < 1) throw new ConfigError('flag --max-new-tokens: must be ≥ 1');
      await initBackend(o.backend);
      const m = await loadForInference(o.checkpoint);
      const trainedTok = TrainerConfigSchema.shape.tokenizer.safeParse(m.trainedConfig?.['tokenizer']);
      const tokenizer = createTokenizer(o.tokenizer ?? (trainedTok.success ? trainedTok.data : 'byte'));
      const model = new Gpt2Model(m.modelConfig);
      const rng = new Rng(o.sampleSeed);
      process.stderr.write(
        `[gmt-train] generating with ${m.path} (${o.temperature === 0 ? 'greedy' : `temperature ${o.temperature}, top-k ${o.topK || 'all'}, seed ${o.sampleSeed}`})\n`,
      );
      for await (const prompt of readPrompts(o.prompt, o.prompts)) {
        process.stdout.write(prompt);
        let last = prompt;
        generate(model, m.params, tokenizer, promptIds(tokenizer, prompt), o, rng, (t) => {
          process.stdout.write(t);
          last = t;
        });
        if (!last.endsWith('\n')) process.stdout.write('\n');
      }
    },
  );

  const ev = program
    .command('eval')
    .description("held-out loss and exact match of a checkpoint, computed exactly as a training run's eval (same data, batches and settings)")
    .requiredOption('--checkpoint <path>', 'a run folder (its latest checkpoint), a step-NNNNNNNN folder, a model.safetensors, or "bundled"')
    .option('--config <file>', 'JSON file of config keys (evaluation data and settings)')
    .option('--json', 'print the result as one JSON object');
  addConfigOptions(ev, [
    'backend',
    'tokenizer',
    'trainData',
    'evalData',
    'syntheticTrainSize',
    'syntheticEvalSize',
    'seqLen',
    'seed',
    'evalExamples',
    'maxNewTokens',
    'microBatchSize',
  ]);
  ev.addHelpText('after', '\nSettings default to those stored in the checkpoint (our checkpoints), else the trainer defaults.');
  ev.action(async (opts: Record<string, unknown>) => {
    const m = await loadForInference(typeof opts['checkpoint'] === 'string' ? opts['checkpoint'] : '');
    const c = await inferenceConfig(m.trainedConfig, opts);
    const backend = await initBackend(c.backend);
    const tokenizer = createTokenizer(c.tokenizer);
    const model = new Gpt2Model(m.modelConfig);
    const data = await loadRunData(c, tokenizer);
    const r = evaluateLikeTraining(model, m.params, tokenizer, data, c);
    if (opts['json'] === true) {
      process.stdout.write(
        JSON.stringify({ checkpoint: m.path, backend: backend.label, loss: r.loss, perplexity: r.perplexity, exactMatch: r.exactMatch, examples: r.examples }) +
          '\n',
      );
    } else {
      process.stdout.write(
        `eval ${m.path}: loss ${formatNumber(r.loss)} · ppl ${formatNumber(r.perplexity)} · exact match ${(100 * r.exactMatch).toFixed(1)}% of ${r.examples} (${backend.label})\n`,
      );
      for (const x of r.samples.slice(0, 3))
        process.stdout.write(
          `  ${x.correct ? '✓' : '✗'} ${JSON.stringify(x.prompt)} → ${JSON.stringify(x.prediction)} (expected ${JSON.stringify(x.reference)})\n`,
        );
    }
  });
  for (const cmd of [program, ...program.commands]) cmd.exitOverride().showSuggestionAfterError(true).configureHelp({ helpWidth: 120 });
  return program;
}

async function main(argv: string[]): Promise<number> {
  let stop = false;
  const onSignal = (sig: string) => {
    if (stop) process.exit(EXIT_CODES.interrupted);
    stop = true;
    process.stderr.write(`\n[gmt-train] ${sig}: finishing the current step and writing a checkpoint (send again to exit now)\n`);
  };
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  process.on('SIGINT', () => onSignal('SIGINT'));
  let code: number = EXIT_CODES.ok;
  const program = buildProgram(
    () => stop,
    (c) => {
      code = c;
    },
  );
  try {
    await program.parseAsync(argv, { from: 'user' });
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? EXIT_CODES.ok : EXIT_CODES.config; // commander printed the message
    throw e;
  }
  return code;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    if (err instanceof TrainerError) {
      process.stderr.write(`[gmt-train] error (${err.name}): ${err.message}\n`);
      process.exit(err.exitCode);
    }
    process.stderr.write(`[gmt-train] internal error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(EXIT_CODES.internal);
  },
);
