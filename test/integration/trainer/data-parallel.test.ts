/**
 * Data-parallel training over a real nats-server, ranks as processes of the real CLI
 * (docs/architecture.md §3-4). Every test compares final checkpoint files byte for byte:
 * - N = 2, 3, 4 ranks (launcher or directly spawned) with `--hash-every 1` = one process with
 *   `--accum-steps N`, for gmt (both scopes, both modes), random and sft;
 * - the sharded protocol = the dense all-reduce reference;
 * - a rank SIGKILLed mid-run: the others exit 75 within the deadline, checkpoints verify, and a
 *   restart as attempt 1 finishes bit-identical; the same for a nats-server restart;
 * - forged and malformed frames on the job's subjects are rejected, counted on /metrics and change
 *   nothing;
 * - the launcher prints its summary once and restarts the gang after a retryable rank failure.
 * Tests run serially: they are CPU-bound processes, and the fault tests use 3 s peer timeouts.
 */
import test from 'ava';
import { singleChunkFrame } from '../../helpers/frames.js';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { NatsConnection } from '@nats-io/transport-node';
import { findLatestCheckpoint, verifyCheckpoint } from '../../../trainer/src/checkpoint/index.js';
import { attemptSubjects, type NatsServerHandle } from '../../../trainer/src/collective/nats/index.js';
import {
  checksum,
  encodeDataFrame,
  encodeHeartbeatFrame,
  jobHash,
  type DataFrameFields,
  type WireIdentity,
} from '../../../trainer/src/collective/nats/wire.js';
import { EXIT_CODES } from '../../../contract/exit-codes.js';
import { runCli, type CliResult } from '../../helpers/cli.js';
import { rawConnection, startServer } from '../collective/nats-fixtures.js';
import {
  SMALL,
  describe,
  finalFiles,
  freePort,
  killAll,
  reference,
  sameFiles,
  spawnCli,
  spawnGang,
  stepDir,
  stepFolders,
  waitForPath,
  waitGang,
  type GangSpec,
  type Proc,
  type ProcExit,
} from './ranks.js';

let root = '';
let server: NatsServerHandle | undefined;
const spawned: Proc[] = [];

test.before(async () => {
  root = await mkdtemp(join(tmpdir(), 'gmt-dp-'));
  server = await startServer();
});

test.after.always(async () => {
  killAll(spawned);
  await server?.stop();
  if (root !== '') await rm(root, { recursive: true, force: true });
});

const url = (): string => server!.url;
let dirs = 0;
const freshDir = (name: string): string => join(root, `${name.replace(/[^a-z0-9]+/gi, '-')}-${dirs++}`);

function gang(g: GangSpec): Proc[] {
  const ps = spawnGang(g);
  spawned.push(...ps);
  return ps;
}

// ---------------------------------------------------------------------------------------------
// 1. Bit-identity across ranks and with one process (--accum-steps N)

interface Case {
  readonly name: string;
  readonly args: readonly string[];
  readonly n: number;
  readonly via: 'launcher' | 'direct';
}

/** Every method/mode/scope and every N at least once; launcher and direct ranks both used. */
const CASES: readonly Case[] = [
  { name: 'gmt tensor/update', args: ['--method', 'gmt', '--mask-scope', 'tensor', '--mask-mode', 'update'], n: 2, via: 'launcher' },
  { name: 'gmt global/update', args: ['--method', 'gmt', '--mask-scope', 'global', '--mask-mode', 'update'], n: 3, via: 'direct' },
  { name: 'gmt tensor/gradient', args: ['--method', 'gmt', '--mask-scope', 'tensor', '--mask-mode', 'gradient'], n: 4, via: 'direct' },
  { name: 'gmt global/gradient', args: ['--method', 'gmt', '--mask-scope', 'global', '--mask-mode', 'gradient', '--mask-ratio', '0.9'], n: 2, via: 'launcher' },
  { name: 'random', args: ['--method', 'random', '--mask-ratio', '0.5'], n: 3, via: 'launcher' },
  { name: 'sft', args: ['--method', 'sft'], n: 4, via: 'direct' },
];

interface DistributedRun {
  readonly dir: string;
  /** The launcher's result, or each rank's exit. */
  readonly launcher?: CliResult;
  readonly ranks?: readonly ProcExit[];
  readonly ok: boolean;
  readonly detail: string;
}

/** One data-parallel run of `args` (plus extra flags), via the launcher or direct ranks. */
async function distributed(name: string, args: readonly string[], n: number, via: 'launcher' | 'direct'): Promise<DistributedRun> {
  const dir = freshDir(name);
  if (via === 'launcher') {
    const r = await runCli([...SMALL, ...args, '--workers', String(n), '--checkpoint-dir', dir], {}, 180_000);
    return { dir, launcher: r, ok: r.code === 0, detail: `launcher exit ${r.code}\n${r.stderr.slice(-3000)}` };
  }
  const exits = await waitGang(gang({ n, url: url(), jobId: `dp-${dirs}`, attempt: 0, dir, args }));
  return { dir, ranks: exits, ok: exits.every((e) => e.code === 0), detail: describe(exits) };
}

const runs = new Map<string, Promise<DistributedRun>>();
/** The distributed run of a case, memoised (the dense and launcher tests reuse them). */
function caseRun(c: Case): Promise<DistributedRun> {
  let p = runs.get(c.name);
  if (p === undefined) {
    p = distributed(c.name, [...c.args, '--hash-every', '1'], c.n, c.via);
    runs.set(c.name, p);
  }
  return p;
}

for (const c of CASES) {
  test.serial(`N=${c.n} ${c.via}: ${c.name} — ranks agree every step and equal one process with --accum-steps ${c.n}`, async (t) => {
    const [run, ref] = await Promise.all([caseRun(c), reference(c.args, c.n, () => freshDir(`ref-${c.name}`))]);
    t.is(ref.result.code, 0, ref.result.stderr);
    t.true(run.ok, run.detail);
    const [a, b] = [await finalFiles(run.dir, 6), await finalFiles(ref.dir, 6)];
    t.deepEqual(sameFiles(a, b), { model: true, optimizer: true }, 'final model.safetensors and optimizer.safetensors bit-identical');
  });
}

// ---------------------------------------------------------------------------------------------
// 2. The sharded protocol against the dense all-reduce reference

test.serial('N=3: sharded threshold path = dense all-reduce reference (--collective dense), bit for bit', async (t) => {
  const c = CASES[1]!;
  const denseRun = await distributed(`dense-${c.name}`, [...c.args, '--hash-every', '1', '--collective', 'dense'], c.n, 'direct');
  t.true(denseRun.ok, denseRun.detail);
  const sharded = await caseRun(c);
  t.true(sharded.ok, sharded.detail);
  const [a, b] = [await finalFiles(sharded.dir, 6), await finalFiles(denseRun.dir, 6)];
  t.deepEqual(sameFiles(a, b), { model: true, optimizer: true });
});

// ---------------------------------------------------------------------------------------------
// 3-4. Faults: a rank killed, nats-server restarted

/** Flags of the fault tests (30 steps, checkpoints every 2, short timeouts). */
const FAULT_STEPS = 30;
const FAULT = [
  '--method',
  'gmt',
  '--steps',
  String(FAULT_STEPS),
  '--checkpoint-every',
  '2',
  '--keep-checkpoints',
  '10',
  '--peer-timeout-ms',
  '3000',
  '--step-timeout-sec',
  '20',
  '--hash-every',
  '1',
];
const FAULT_DEADLINE_MS = 20_000;

/** Every complete checkpoint verifies (sha256 of every file), and the latest is found. */
async function checkpointsIntact(dir: string): Promise<{ latest: string | undefined; steps: string[] }> {
  const steps = await stepFolders(dir);
  for (const s of steps) await verifyCheckpoint(join(dir, s));
  const latest = await findLatestCheckpoint(dir);
  if (latest !== undefined) await verifyCheckpoint(latest);
  return { latest, steps };
}

test.serial(
  'N=3 direct: SIGKILL of rank 1 mid-run → survivors exit 75 within the deadline, checkpoints intact, restart as attempt 1 is bit-identical',
  async (t) => {
    const dir = freshDir('kill-rank');
    const refP = reference(FAULT, 3, () => freshDir('ref-fault-3'));
    const job = 'kill-rank';
    const ranks = gang({ n: 3, url: url(), jobId: job, attempt: 0, dir, args: FAULT });
    await waitForPath(join(dir, stepDir(2)), ranks);
    const killedAt = performance.now();
    ranks[1]!.child.kill('SIGKILL');
    const exits = await waitGang(ranks, 60_000);
    t.is(exits[1]!.signal, 'SIGKILL');
    for (const r of [0, 2]) {
      t.is(exits[r]!.code, EXIT_CODES.retryable, `rank ${r} exits with the retryable code\n${describe(exits)}`);
      const ms = exits[r]!.at - killedAt;
      t.true(ms < FAULT_DEADLINE_MS, `rank ${r} aborted after ${Math.round(ms)} ms`);
      t.log(`rank ${r} exited ${exits[r]!.code} ${Math.round(ms)} ms after the kill`);
    }
    const { latest, steps } = await checkpointsIntact(dir);
    t.truthy(latest, 'a checkpoint survives');
    t.false(steps.includes(stepDir(FAULT_STEPS)), `killed before the end (checkpoints: ${steps.join(', ')})`);
    t.log(`checkpoints after the kill: ${steps.join(', ')}; latest ${latest}`);

    const again = await waitGang(gang({ n: 3, url: url(), jobId: job, attempt: 1, dir, args: FAULT }));
    t.true(
      again.every((e) => e.code === 0),
      describe(again),
    );
    t.regex(again[0]!.stderr, /resumed/);
    const ref = await refP;
    t.is(ref.result.code, 0, ref.result.stderr);
    t.deepEqual(sameFiles(await finalFiles(dir, FAULT_STEPS), await finalFiles(ref.dir, FAULT_STEPS)), { model: true, optimizer: true });
  },
);

test.serial('N=2 direct: nats-server restarted mid-run → ranks exit 75, no divergence, resume as attempt 1 is bit-identical', async (t) => {
  const own = await startServer();
  try {
    const dir = freshDir('nats-restart');
    const refP = reference(FAULT, 2, () => freshDir('ref-fault-2'));
    const job = 'nats-restart';
    const ranks = gang({ n: 2, url: own.url, jobId: job, attempt: 0, dir, args: FAULT });
    await waitForPath(join(dir, stepDir(2)), ranks);
    const restartedAt = performance.now();
    await own.restart();
    const exits = await waitGang(ranks, 60_000);
    for (const r of [0, 1]) {
      t.is(exits[r]!.code, EXIT_CODES.retryable, `rank ${r}\n${describe(exits)}`);
      t.true(exits[r]!.at - restartedAt < FAULT_DEADLINE_MS, `rank ${r} aborted after ${Math.round(exits[r]!.at - restartedAt)} ms`);
      t.notRegex(exits[r]!.stderr, /diverged/);
    }
    const { latest, steps } = await checkpointsIntact(dir);
    t.truthy(latest);
    t.false(steps.includes(stepDir(FAULT_STEPS)), `interrupted before the end (checkpoints: ${steps.join(', ')})`);
    t.log(
      `exits ${exits.map((e) => e.code).join(',')} ${exits.map((e) => Math.round(e.at - restartedAt)).join('/')} ms after the restart; checkpoints ${steps.join(', ')}`,
    );

    const again = await waitGang(gang({ n: 2, url: own.url, jobId: job, attempt: 1, dir, args: FAULT }));
    t.true(
      again.every((e) => e.code === 0),
      describe(again),
    );
    t.regex(again[0]!.stderr, /resumed/);
    const ref = await refP;
    t.is(ref.result.code, 0, ref.result.stderr);
    t.deepEqual(sameFiles(await finalFiles(dir, FAULT_STEPS), await finalFiles(ref.dir, FAULT_STEPS)), { model: true, optimizer: true });
  } finally {
    await own.stop();
  }
});

// ---------------------------------------------------------------------------------------------
// 5. Forged and malformed frames

/** Rejected-message counts by reason from a Prometheus text exposition. */
function rejectedCounts(text: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of text.split('\n')) {
    const m = /^gmt_trainer_rejected_messages_total\{([^}]*)\}\s+(\S+)/.exec(line);
    if (m === null) continue;
    const reason = /reason="([^"]*)"/.exec(m[1]!)?.[1];
    if (reason !== undefined) out[reason] = (out[reason] ?? 0) + Number(m[2]);
  }
  return out;
}

/** Frames that must all be rejected by rank 0, one per fault kind. */
function forgeries(job: string, attempt: number): Array<{ kind: string; subject: string; bytes: Uint8Array }> {
  const s = attemptSubjects(job, attempt);
  const id: WireIdentity = { jobHash: jobHash(job), attempt };
  const payload = new Uint8Array(256).map((_, i) => (i * 37) & 0xff);
  const fields = (over: Partial<DataFrameFields> = {}): DataFrameFields => singleChunkFrame(payload, { step: 2, ...over });
  const toRank0 = s.data('reduce_scatter', 0);
  const good = (): Uint8Array => encodeDataFrame(id, fields());
  const badPayload = good();
  badPayload[100] = badPayload[100]! ^ 0xff;
  const badHeader = good();
  badHeader[21] = badHeader[21]! ^ 0x01;
  const oversized = good();
  {
    const v = new DataView(oversized.buffer);
    v.setBigUint64(40, 1n << 40n, true);
    v.setUint32(60, checksum(oversized.subarray(0, 60)), true);
  }
  return [
    { kind: 'stale attempt', subject: toRank0, bytes: encodeDataFrame({ jobHash: id.jobHash, attempt: attempt - 1 }, fields()) },
    {
      kind: 'stale attempt heartbeat',
      subject: s.heartbeat,
      bytes: encodeHeartbeatFrame({ jobHash: id.jobHash, attempt: attempt - 1 }, { source: 1, ready: true, instance: 1n, seq: 1 }),
    },
    { kind: 'wrong step', subject: toRank0, bytes: encodeDataFrame(id, fields({ step: 1_000_000 })) },
    {
      kind: 'wrong step broadcast',
      subject: s.broadcast('norm'),
      bytes: encodeDataFrame(id, fields({ step: 1_000_000, phase: 'norm', broadcast: true, dest: 0xffff })),
    },
    { kind: 'bad payload checksum', subject: toRank0, bytes: badPayload },
    { kind: 'bad header checksum', subject: s.broadcast('all_gather'), bytes: badHeader },
    { kind: 'truncated header', subject: toRank0, bytes: good().subarray(0, 40) },
    { kind: 'truncated payload', subject: toRank0, bytes: good().subarray(0, 64 + 100) },
    { kind: 'oversized length header', subject: toRank0, bytes: oversized },
    { kind: 'another job id', subject: toRank0, bytes: encodeDataFrame({ jobHash: jobHash('another-job'), attempt }, fields()) },
    { kind: 'garbage', subject: s.broadcast('threshold'), bytes: new Uint8Array(300).fill(0xab) },
    // Another job's subjects: never subscribed, so never seen (and never counted) by this job.
    { kind: 'other job subject', subject: attemptSubjects('another-job', attempt).data('reduce_scatter', 0), bytes: good() },
  ];
}

test.serial('N=2 direct: forged/malformed frames during a run are rejected, counted on /metrics, and change nothing', async (t) => {
  const dir = freshDir('forged');
  const refP = reference(FAULT, 2, () => freshDir('ref-fault-2'));
  const job = 'forged';
  const attempt = 1;
  const port = await freePort();
  const ranks = gang({ n: 2, url: url(), jobId: job, attempt, dir, args: FAULT, rankArgs: (r) => (r === 0 ? ['--metrics-port', String(port)] : []) });
  const nc: NatsConnection = await rawConnection(url());
  const frames = forgeries(job, attempt);
  const want = ['wrong_attempt', 'wrong_step', 'bad_checksum', 'malformed', 'wrong_job'];
  let last: Record<string, number> = {};
  let rounds = 0;
  try {
    const done = Promise.all(ranks.map((p) => p.exited));
    let finished = false;
    void done.then(() => {
      finished = true;
    });
    // Forge continuously while the ranks run; scrape rank 0's /metrics until every reason shows.
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- set when the ranks exit
    while (!finished && !want.every((r) => (last[r] ?? 0) > 0)) {
      for (const f of frames) nc.publish(f.subject, f.bytes);
      rounds++;
      await nc.flush();
      try {
        const res = await fetch(`http://127.0.0.1:${port}/metrics`);
        if (res.ok) last = rejectedCounts(await res.text());
      } catch {
        // Not listening yet (or already closed).
      }
      await new Promise((r) => setTimeout(r, 25));
    }
    const exits = await waitGang(ranks, 120_000);
    t.log(`${rounds} rounds of ${frames.length} forged frames; rank 0 rejected: ${JSON.stringify(last)}`);
    t.true(
      exits.every((e) => e.code === 0),
      describe(exits),
    );
    for (const r of want) t.true((last[r] ?? 0) > 0, `gmt_trainer_rejected_messages_total{reason="${r}"} > 0 (scraped ${JSON.stringify(last)})`);
  } finally {
    await nc.close();
  }
  const ref = await refP;
  t.is(ref.result.code, 0, ref.result.stderr);
  t.deepEqual(
    sameFiles(await finalFiles(dir, FAULT_STEPS), await finalFiles(ref.dir, FAULT_STEPS)),
    { model: true, optimizer: true },
    'results unchanged by the forged frames',
  );
});

// ---------------------------------------------------------------------------------------------
// 6. The launcher

test.serial('launcher: gmt-train --workers 2 with small defaults succeeds and prints the summary once', async (t) => {
  const run = await caseRun(CASES[0]!);
  t.true(run.ok, run.detail);
  const out = run.launcher!.stdout;
  t.is(out.split('GMT fine-tune finished').length - 1, 1, out);
  t.regex(out, /checkpoint\s+\S+step-00000006/);
});

/** Pids of the launcher's rank processes (its children running main.js), by GMT_RANK. */
function rankPids(launcherPid: number): Map<number, number> {
  const out = new Map<number, number>();
  let text: string;
  try {
    text = execFileSync('ps', ['--ppid', String(launcherPid), '-o', 'pid=,args='], { encoding: 'utf8' });
  } catch {
    return out; // ps exits 1 when there are no children yet
  }
  for (const line of text.split('\n')) {
    const m = /^\s*(\d+)\s+(.*)$/.exec(line);
    if (m === null || !m[2]!.includes('main.js')) continue;
    const pid = Number(m[1]);
    try {
      const env = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
      const rank = env.find((e) => e.startsWith('GMT_RANK='));
      if (rank !== undefined) out.set(Number(rank.slice('GMT_RANK='.length)), pid);
    } catch {
      // exited meanwhile
    }
  }
  return out;
}

test.serial('launcher: a rank killed mid-run → the gang restarts as attempt 1 and finishes bit-identical', async (t) => {
  const dir = freshDir('launcher-restart');
  const refP = reference(FAULT, 2, () => freshDir('ref-fault-2'));
  const launcher = spawnCli([...SMALL, ...FAULT, '--workers', '2', '--checkpoint-dir', dir]);
  spawned.push(launcher);
  await waitForPath(join(dir, stepDir(2)), [launcher], 90_000);
  const pids = rankPids(launcher.child.pid!);
  t.is(pids.size, 2, `rank processes of the launcher: ${JSON.stringify([...pids])}`);
  process.kill(pids.get(1)!, 'SIGKILL');
  const [end] = await waitGang([launcher], 150_000);
  t.is(end!.code, 0, end!.stderr);
  t.regex(end!.stderr, /gang failed/);
  t.is(end!.stdout.split('GMT fine-tune finished').length - 1, 1, end!.stdout);
  t.regex(end!.stdout, /resumed from/);
  const ref = await refP;
  t.is(ref.result.code, 0, ref.result.stderr);
  t.deepEqual(sameFiles(await finalFiles(dir, FAULT_STEPS), await finalFiles(ref.dir, FAULT_STEPS)), { model: true, optimizer: true });
});
