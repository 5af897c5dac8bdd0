// `npm run test:e2e [-- FILE…]` (after setup:binaries and setup:node): the e2e tier on the real node.
//
//  1. builds the images (images/*.Dockerfile with buildah, and the NATS image: build-images.ts);
//  2. runs test/e2e/real-node.test.ts alone: it starts and tears down a real node of its own (the
//     node, the guard, teardown and stale-node checks, the chart, examples/tiny.yaml, a gang restart);
//  3. for every other e2e file: starts ONE real node here, imports the images, runs ava over the
//     files with GMT_E2E_KUBECONFIG pointing at it, closes it (always: on
//     failure, SIGINT or SIGTERM too) and checks that the machine is as it was before the node
//     (machine-state.ts).
//
// With GMT_E2E_KUBECONFIG already set (an existing cluster, e.g. kind, with the images loaded), step
// 3 runs the files against that cluster as it is and never tears it down; images are not built for
// it. FILE… (dist/test/e2e/*.test.js) selects files; the default is every e2e file. Exits non-zero
// when ava fails or the machine differs, saying which.

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { constants, tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { formatDuration, repoRoot } from '../test/harness/binaries.js';
import { E2E_ENV } from '../test/harness/cluster.js';
import { buildProjectImages } from '../test/harness/real-node/build-images.js';
import { tryRun } from '../test/harness/real-node/exec.js';
import { diffMachine, snapshotMachine } from '../test/harness/real-node/machine-state.js';
import { NODE_LINK } from '../test/harness/real-node/network.js';
import { cleanupStaleNodes, RealCluster } from '../test/harness/real-node/node.js';

const REAL_NODE_FILE = 'real-node.test.js';

const log = (line: string): void => {
  process.stderr.write(`[e2e] ${line}\n`);
};

/** Steps and how long each took, printed at the end. */
const timings: [string, number][] = [];
async function timed<T>(what: string, f: () => Promise<T>): Promise<T> {
  const started = Date.now();
  try {
    return await f();
  } finally {
    timings.push([what, Date.now() - started]);
    log(`${what}: ${formatDuration(Date.now() - started)}`);
  }
}

/** The ava child running now (SIGINT/SIGTERM are passed on to it). */
let ava: ChildProcess | undefined;
let interrupted: NodeJS.Signals | undefined;
const running = (): boolean => interrupted === undefined;

/**
 * Runs ava over the files that use the e2e cluster with a TMPDIR of their own, removed afterwards:
 * an interrupted file leaves its temporary folders there (its after hooks do not run).
 */
async function runAvaIsolated(files: readonly string[], env: NodeJS.ProcessEnv): Promise<number> {
  const tmp = await mkdtemp(join(tmpdir(), 'gmt-e2e-run-'));
  try {
    return await runAva(files, { ...env, TMPDIR: tmp });
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

/** Runs ava over `files` with `env`; resolves its exit code (a signal counts as failure). */
function runAva(files: readonly string[], env: NodeJS.ProcessEnv): Promise<number> {
  return new Promise((resolve, reject) => {
    // A process group of its own: a signal to the runner reaches ava's workers and their servers
    // too (stop() below), not only ava's main process, whose workers would outlive it.
    const child = spawn(process.execPath, [join(repoRoot(), 'node_modules', 'ava', 'entrypoints', 'cli.mjs'), ...files], {
      cwd: repoRoot(),
      env,
      stdio: 'inherit',
      detached: true,
    });
    ava = child;
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      ava = undefined;
      resolve(code ?? 128 + (signal !== null ? constants.signals[signal] : 0));
    });
  });
}

async function selectFiles(args: readonly string[]): Promise<string[]> {
  if (args.length > 0) return [...args];
  const dir = join(repoRoot(), 'dist', 'test', 'e2e');
  const names = (await readdir(dir)).filter((f) => f.endsWith('.test.js')).sort();
  if (names.length === 0) throw new Error(`no e2e test files in ${dir}: run npm run build first`);
  return names.map((f) => join('dist', 'test', 'e2e', f));
}

async function main(): Promise<number> {
  const started = Date.now();
  const files = await selectFiles(process.argv.slice(2));
  const realNode = files.filter((f) => basename(f) === REAL_NODE_FILE);
  const others = files.filter((f) => basename(f) !== REAL_NODE_FILE);
  const existing = process.env[E2E_ENV.kubeconfig];
  const useExisting = existing !== undefined && existing !== '';
  const failures: string[] = [];

  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      if (interrupted === undefined) log(`${signal}: stopping the tests, then the node (wait for it: it undoes its changes to the machine)`);
      interrupted = signal;
      const pid = ava?.pid;
      if (pid !== undefined) {
        try {
          process.kill(-pid, signal);
        } catch {
          // already gone
        }
      }
    });
  }

  // One real node per machine: say so before building anything.
  const nodeRunning = (await tryRun('ip', ['link', 'show', NODE_LINK])) !== undefined;
  if (nodeRunning && realNode.length > 0) {
    throw new Error(
      `${REAL_NODE_FILE} starts a real node of its own, but one is already running on this machine (link ${NODE_LINK}; npm run cluster:up?): stop it (npm run cluster:down), or select the other files (npm run test:e2e -- dist/test/e2e/<file>.test.js …)`,
    );
  }
  if (nodeRunning && others.length > 0 && !useExisting) {
    throw new Error(
      `the e2e files need a real node of their own, but one is already running on this machine (link ${NODE_LINK}; npm run cluster:up?): stop it (npm run cluster:down), or test on it: ${E2E_ENV.kubeconfig}=<its kubeconfig> npm run test:e2e -- <files>`,
    );
  }
  const archives = realNode.length > 0 || (others.length > 0 && !useExisting) ? await timed('image build', () => buildProjectImages(log)) : [];

  if (realNode.length > 0 && running()) {
    // Its own node: GMT_E2E_KUBECONFIG means nothing to it.
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== E2E_ENV.kubeconfig));
    const code = await timed(`tests (${REAL_NODE_FILE})`, () => runAva(realNode, env));
    if (code !== 0) failures.push(`ava failed on ${REAL_NODE_FILE} (exit ${code})`);
    // Its node is gone unless its worker died before closing it (killed, interrupted): undo that one here.
    await cleanupStaleNodes(log);
  }

  if (others.length > 0 && running()) {
    if (useExisting) {
      log(`using the existing cluster of ${E2E_ENV.kubeconfig}=${existing} as it is (images must be loaded there; it is not torn down)`);
      const code = await timed(`tests (${others.length} files)`, () => runAvaIsolated(others, process.env));
      if (code !== 0) failures.push(`ava failed on the other e2e files (exit ${code})`);
    } else {
      const before = await snapshotMachine();
      const cluster = await timed('cluster start', () => RealCluster.start({ log }));
      try {
        await timed('image import', () => cluster.importImages(archives));
        if (running()) {
          const env = { ...process.env, [E2E_ENV.kubeconfig]: cluster.controlPlane.kubeconfigPath };
          const code = await timed(`tests (${others.length} files)`, () => runAvaIsolated(others, env));
          if (code !== 0) failures.push(`ava failed on the other e2e files (exit ${code})`);
        }
        const crashed = cluster.crashed;
        if (crashed.length > 0) failures.push(`node components crashed during the tests: ${crashed.join(', ')} (logs under ${cluster.dir}/logs)`);
      } catch (err) {
        failures.push(`on the node: ${err instanceof Error ? err.message : String(err)}`);
      } finally {
        await timed('teardown', () => cluster.close());
      }
      const diff = diffMachine(before, await snapshotMachine());
      if (diff.length > 0) failures.push(`the machine differs from before the node started:\n  ${diff.join('\n  ')}`);
    }
  }
  if (interrupted !== undefined) failures.push(`interrupted by ${interrupted}`);

  log(`timings: ${timings.map(([what, ms]) => `${what} ${formatDuration(ms)}`).join(' · ')} · total ${formatDuration(Date.now() - started)}`);
  for (const f of failures) log(`FAILED: ${f}`);
  if (failures.length === 0) log('e2e passed');
  return failures.length === 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    log(`FAILED: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  },
);
