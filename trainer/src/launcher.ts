/**
 * The local launcher (`gmt-train --workers N`): starts an embedded nats-server with a configuration
 * tuned for collectives, N rank processes of this same CLI with the docs/architecture.md §4 environment,
 * aggregates rank 0's progress messages into one progress bar, and — like the operator's gang
 * policy — restarts the whole gang with attempt+1 from the last checkpoint after a retryable exit.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { connect } from '@nats-io/transport-node';
import type { TrainerConfig } from '../../contract/config.js';
import { ENV } from '../../contract/env.js';
import { EXIT_CODES, RETRYABLE_EXIT_CODES } from '../../contract/exit-codes.js';
import { ProgressMessageSchema, progressSubject } from '../../contract/progress.js';
import { defaultThreads } from './backend.js';
import { findNatsServer, startNatsServer } from './collective/nats/index.js';
import { RetryableError } from './errors.js';
import type { Logger } from './log.js';
import { createProgress } from './progress.js';

/** Remove the launcher's own flags from the argument list given to the ranks. */
export function rankArgs(argv: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--workers' || a === '--attempt' || a === '--progress') {
      i++;
      continue;
    }
    if (a.startsWith('--workers=') || a.startsWith('--attempt=') || a.startsWith('--progress=')) continue;
    out.push(a);
  }
  return out;
}

interface Rank {
  readonly child: ChildProcess;
  readonly exited: Promise<number>;
}

/** `print` writes one line of a rank's output (through the progress display, so a bar is not broken). */
function startRank(
  script: string,
  args: readonly string[],
  env: NodeJS.ProcessEnv,
  rank: number,
  log: Logger,
  echoStdout: boolean,
  print: (line: string, out: NodeJS.WriteStream) => void,
): Rank {
  const child = spawn(process.execPath, [script, ...args, '--workers', '0', '--progress', 'none'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const forward = (stream: NodeJS.ReadableStream, out: NodeJS.WriteStream, all: boolean) => {
    let buf = '';
    stream.on('data', (d: Buffer) => {
      buf += d.toString();
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (all || /error|WARN|abort/i.test(line)) print(rank === 0 ? line : `[rank ${rank}] ${line}`, out);
      }
    });
  };
  forward(child.stdout, process.stdout, echoStdout);
  forward(child.stderr, process.stderr, rank === 0);
  // 'close', not 'exit': every line of the rank's output has been read by then.
  const exited = new Promise<number>((resolve) => child.on('close', (code, signal) => resolve(code ?? (signal === 'SIGKILL' ? 137 : 143))));
  child.on('error', (e) => log.error('rank process failed to start', { rank, error: e.message }));
  return { child, exited };
}

/** Run N ranks over an embedded NATS server; returns the process exit code. */
export async function launchLocal(script: string, argv: readonly string[], c: TrainerConfig, log: Logger, maxRestarts = 3): Promise<number> {
  const n = c.workers;
  const binary = findNatsServer();
  const server = await startNatsServer({ binary });
  const jobId = c.jobId === 'local' ? `local-${process.pid}` : c.jobId;
  log.info('launcher', { workers: n, nats: server.url, jobId, checkpointDir: c.checkpointDir });
  const nc = await connect({ servers: server.url, name: 'gmt-launcher' });
  const progress = createProgress(c.progress);
  const sub = nc.subscribe(progressSubject(jobId));
  void (async () => {
    for await (const m of sub) {
      const p = ProgressMessageSchema.safeParse(
        (() => {
          try {
            return JSON.parse(m.string()) as unknown;
          } catch {
            return undefined;
          }
        })(),
      );
      if (!p.success) continue;
      const d = p.data;
      if (d.phase != null && d.phase !== 'training') continue; // the final message repeats the last step
      progress.update({
        step: d.step,
        total: d.totalSteps ?? c.steps,
        fields: {
          loss: d.loss != null ? d.loss.toFixed(4) : '?',
          kept: d.keptRatio != null ? `${(100 * d.keptRatio).toFixed(1)}%` : '?',
          'samples/s': (d.samplesPerSecond ?? 0).toFixed(1),
          attempt: String(d.attempt),
          ranks: String(n),
        },
      });
    }
  })();
  const args = rankArgs(argv);
  // The ranks share this machine: each gets its share of the cores unless --threads/GMT_THREADS says otherwise.
  const threads = c.threads > 0 ? c.threads : Math.max(1, Math.floor(defaultThreads() / n));
  try {
    for (let attempt = c.attempt; ; attempt++) {
      const env = (rank: number): NodeJS.ProcessEnv => ({
        ...process.env,
        [ENV.rank]: String(rank),
        [ENV.worldSize]: String(n),
        [ENV.jobId]: jobId,
        [ENV.attempt]: String(attempt),
        [ENV.natsUrl]: server.url,
        [ENV.config]: process.env[ENV.config] ?? '',
        [ENV.threads]: String(threads),
      });
      // stderr lines go above the bar; stdout (rank 0's summary) is printed once the bar is finished.
      const stdoutLines: string[] = [];
      const print = (line: string, out: NodeJS.WriteStream): void => {
        if (out === process.stderr) progress.note(line);
        else stdoutLines.push(line);
      };
      const ranks = Array.from({ length: n }, (_, r) => startRank(script, args, env(r), r, log, r === 0, print));
      // The first rank to fail decides; the others abort on their own (lost peer) or are stopped.
      const codes = ranks.map((r) => r.exited);
      const first = await Promise.race(codes.map((p, r) => p.then((code) => ({ code, rank: r }))));
      if (first.code !== 0) {
        const stop = setTimeout(() => {
          for (const r of ranks) r.child.kill('SIGKILL');
        }, 5000);
        for (const r of ranks) r.child.kill('SIGTERM');
        await Promise.all(codes);
        clearTimeout(stop);
      }
      const all = await Promise.all(codes);
      progress.done();
      for (const line of stdoutLines.splice(0)) process.stdout.write(`${line}\n`);
      if (all.every((x) => x === 0)) return EXIT_CODES.ok;
      const code = first.code !== 0 ? first.code : all.find((x) => x !== 0)!;
      const retryable = RETRYABLE_EXIT_CODES.includes(code) || code === 137 || code === 143;
      log.warn('gang failed', { attempt, rank: first.rank, exitCode: code, retryable, codes: all.join(',') });
      if (!retryable || attempt - c.attempt >= maxRestarts) return retryable ? EXIT_CODES.retryable : code;
      progress.note(`[gmt-train] restarting all ${n} ranks as attempt ${attempt + 1} from the last checkpoint`);
    }
  } catch (e) {
    throw e instanceof RetryableError ? e : new RetryableError(`launcher: ${(e as Error).message}`, { cause: e });
  } finally {
    progress.done();
    sub.unsubscribe();
    await nc.close().catch(() => undefined);
    await server.stop();
  }
}
