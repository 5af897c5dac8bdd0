// Helpers of the data-parallel trainer integration tests: rank processes of the real CLI against a
// real nats-server, single-process references, and checkpoint comparison.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { CLI, MICRO_MODEL, runCli, type CliResult } from '../../helpers/cli.js';

/** The tiny settings of every run (a few seconds each). */
export const SMALL = [...MICRO_MODEL, '--micro-batch-size', '4', '--steps', '6', '--eval-examples', '4', '--progress', 'none'];

/** `step-NNNNNNNN`. */
export function stepDir(step: number): string {
  return `step-${String(step).padStart(8, '0')}`;
}

/** A rank process (or any CLI process) with its output and exit. */
export interface Proc {
  readonly child: ChildProcess;
  readonly exited: Promise<ProcExit>;
  stdout(): string;
  stderr(): string;
}

/** How a process ended and when (performance.now()). */
export interface ProcExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly at: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Spawns the CLI with args and extra env. */
export function spawnCli(args: readonly string[], env: Record<string, string> = {}): Proc {
  const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '',
    err = '';
  child.stdout.on('data', (d: Buffer) => {
    out += d.toString();
  });
  child.stderr.on('data', (d: Buffer) => {
    err += d.toString();
  });
  const exited = new Promise<ProcExit>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal, at: performance.now(), stdout: out, stderr: err })),
  );
  return { child, exited, stdout: () => out, stderr: () => err };
}

/** What identifies a gang of directly spawned ranks. */
export interface GangSpec {
  readonly n: number;
  readonly url: string;
  readonly jobId: string;
  readonly attempt: number;
  readonly dir: string;
  /** Extra flags for every rank. */
  readonly args: readonly string[];
  /** Extra flags for one rank (e.g. rank 0's --metrics-port). */
  readonly rankArgs?: (rank: number) => readonly string[];
  /** Extra environment for every rank (e.g. NATS_CREDS). */
  readonly env?: Readonly<Record<string, string>>;
}

/** Spawns N rank processes with the docs/architecture.md §4 environment. */
export function spawnGang(g: GangSpec): Proc[] {
  return Array.from({ length: g.n }, (_, rank) =>
    spawnCli([...SMALL, ...g.args, '--checkpoint-dir', g.dir, ...(g.rankArgs?.(rank) ?? [])], {
      GMT_RANK: String(rank),
      GMT_WORLD_SIZE: String(g.n),
      GMT_JOB_ID: g.jobId,
      GMT_ATTEMPT: String(g.attempt),
      NATS_URL: g.url,
      ...g.env,
    }),
  );
}

/** Kills whatever is still running (test cleanup). */
export function killAll(procs: readonly Proc[]): void {
  for (const p of procs) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
}

/** Waits for every rank, failing (and killing them all) after `timeoutMs`. */
export async function waitGang(procs: readonly Proc[], timeoutMs = 120_000): Promise<ProcExit[]> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      killAll(procs);
      reject(new Error(`gang did not finish within ${timeoutMs} ms:\n${procs.map((p, r) => `--- rank ${r}\n${p.stderr().slice(-1500)}`).join('\n')}`));
    }, timeoutMs);
  });
  try {
    return await Promise.race([Promise.all(procs.map((p) => p.exited)), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** A one-line description of the exits (for assertion messages). */
export function describe(exits: readonly ProcExit[]): string {
  return exits.map((e, r) => `--- rank ${r}: code ${e.code} signal ${e.signal}\n${e.stderr.slice(-2000)}`).join('\n');
}

/** The final checkpoint's model and optimizer files (asserts that `latest` names the final step). */
export interface FinalFiles {
  readonly step: string;
  readonly model: Buffer;
  readonly optimizer: Buffer;
}

/** Reads `<dir>/latest`'s model.safetensors and optimizer.safetensors; throws unless latest is step `steps`. */
export async function finalFiles(dir: string, steps: number): Promise<FinalFiles> {
  const latest = (await readFile(join(dir, 'latest'), 'utf-8')).trim();
  if (latest !== stepDir(steps)) throw new Error(`${dir}: latest is ${latest}, expected ${stepDir(steps)}`);
  return { step: latest, model: await readFile(join(dir, latest, 'model.safetensors')), optimizer: await readFile(join(dir, latest, 'optimizer.safetensors')) };
}

/** Whether two final checkpoints are byte-identical (model and optimizer). */
export function sameFiles(a: FinalFiles, b: FinalFiles): { model: boolean; optimizer: boolean } {
  return { model: a.model.equals(b.model), optimizer: a.optimizer.equals(b.optimizer) };
}

/** Step folders currently in a checkpoint dir (complete ones only: no temporaries). */
export async function stepFolders(dir: string): Promise<string[]> {
  if (!existsSync(dir)) return [];
  return (await readdir(dir)).filter((e) => /^step-\d{8}$/.test(e)).sort();
}

/** Polls until `path` exists; throws if any of `procs` exited first or after `timeoutMs`. */
export async function waitForPath(path: string, procs: readonly Proc[], timeoutMs = 60_000): Promise<void> {
  const t0 = Date.now();
  while (!existsSync(path)) {
    const dead = procs.findIndex((p) => p.child.exitCode !== null || p.child.signalCode !== null);
    if (dead >= 0)
      throw new Error(`process ${dead} exited (code ${procs[dead]!.child.exitCode}) before ${path} appeared:\n${procs[dead]!.stderr().slice(-2000)}`);
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${path}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const references = new Map<string, Promise<Reference>>();

/** A single-process reference run and where it wrote its checkpoints. */
export interface Reference {
  readonly dir: string;
  readonly result: CliResult;
}

/**
 * The single-process reference: the same flags with `--accum-steps n` (the same global batches as
 * n ranks × 1 micro-batch each), written to a fresh `dirFor(key)`. Memoised per (flags, n).
 */
export function reference(args: readonly string[], n: number, dirFor: () => string): Promise<Reference> {
  const all = [...SMALL, ...args, '--accum-steps', String(n)];
  const key = JSON.stringify(all);
  let p = references.get(key);
  if (p === undefined) {
    const dir = dirFor();
    p = runCli([...all, '--checkpoint-dir', dir]).then((result) => ({ dir, result }));
    references.set(key, p);
  }
  return p;
}

/** A free TCP port on loopback. */
export { freePort } from '../../../trainer/src/collective/nats/index.js';
