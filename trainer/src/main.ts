#!/usr/bin/env node
/**
 * gmt-train: the trainer's command line. `gmt-train [--config file.json] [--key value …]` fine-tunes;
 * `gmt-train pretrain [--steps N] [--out DIR]` makes the bundled base model. The only place that
 * exits the process: exit codes (contract/exit-codes.ts) tell the operator retryable from fatal.
 */
import { EXIT_CODES } from '../../contract/exit-codes.js';
import { TrainerError, ConfigError } from './errors.js';
import { configKeys, flagName, loadConfig } from './config/load.js';
import { TrainerConfigSchema } from '../../contract/config.js';
import { createLogger, formatNumber } from './log.js';
import { PRETRAIN_DEFAULTS, pretrain } from './pretrain.js';
import { runTraining, type RunSummary } from './train/run.js';
import { launchLocal } from './launcher.js';
import { fileURLToPath } from 'node:url';

const HELP = `gmt-train — Gradient-Mask Tuning fine-tuning (TensorFlow.js)

Usage:
  gmt-train [--config FILE.json] [--KEY VALUE ...]   fine-tune (defaults: GMT on the bundled base model)
  gmt-train --workers N [...]                         N data-parallel ranks over an embedded nats-server
  gmt-train pretrain [--steps N] [--documents N] [--seed N] [--out DIR] [--backend B]
  gmt-train --help

Options (config keys as kebab-case flags; env GMT_CONFIG, GMT_RANK, GMT_WORLD_SIZE, GMT_JOB_ID,
GMT_ATTEMPT, NATS_URL, GMT_CHECKPOINT_DIR, GMT_METRICS_PORT, GMT_BACKEND, GMT_THREADS also apply):
${configKeys()
  .map((k) => `  ${flagName(k)}`)
  .join('\n')}

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
  ];
  return lines.join('\n');
}

async function main(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(HELP + '\n');
    return EXIT_CODES.ok;
  }
  let stop = false;
  const onSignal = (sig: string) => {
    if (stop) process.exit(EXIT_CODES.interrupted);
    stop = true;
    process.stderr.write(`\n[gmt-train] ${sig}: finishing the current step and writing a checkpoint (send again to exit now)\n`);
  };
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  process.on('SIGINT', () => onSignal('SIGINT'));
  if (argv[0] === 'pretrain') {
    const o = { ...PRETRAIN_DEFAULTS };
    for (let i = 1; i < argv.length; i += 2) {
      const k = argv[i],
        v = argv[i + 1];
      if (v === undefined) throw new ConfigError(`flag ${k} needs a value`);
      if (k === '--steps') o.steps = Number(v);
      else if (k === '--documents') o.documents = Number(v);
      else if (k === '--seed') o.seed = Number(v);
      else if (k === '--out') o.out = v;
      else if (k === '--backend') o.backend = TrainerConfigSchema.shape.backend.parse(v);
      else if (k === '--progress') o.progress = TrainerConfigSchema.shape.progress.parse(v);
      else throw new ConfigError(`unknown flag ${k} for pretrain (see gmt-train --help)`);
    }
    if (![o.steps, o.documents, o.seed].every((n) => Number.isInteger(n) && n >= 0))
      throw new ConfigError('pretrain: --steps, --documents and --seed must be non-negative integers');
    await pretrain(o, createLogger('text'));
    return EXIT_CODES.ok;
  }
  const { config } = await loadConfig(argv, process.env);
  const log = createLogger(config.logFormat, config.worldSize > 1 ? { rank: config.rank } : {});
  if (config.workers > 0) return launchLocal(fileURLToPath(import.meta.url), argv, config, log);
  const summary = await runTraining(config, { log, shouldStop: () => stop });
  if (config.rank === 0) process.stdout.write(summaryText(summary) + '\n');
  return EXIT_CODES.ok;
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
