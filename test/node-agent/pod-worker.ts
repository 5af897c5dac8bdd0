// Runs one pod bound to the agent's node: its init containers one after another, then its
// containers as local process groups, restarting them per restartPolicy, and reports status.
// On deletion it sends SIGTERM, waits the grace period, sends SIGKILL, then removes the pod
// (what the kubelet does: the apiserver only marks a bound pod for deletion).

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, open } from 'node:fs/promises';
import { join } from 'node:path';
import type { V1Container, V1Pod } from '@kubernetes/client-node';
import { computeArgv, lookupImage, type ImageMap } from './image-map.js';
import { ContainerConfigError, computeContainerEnv, expandVars, type EnvSources, type NodeFacts } from './pod-env.js';
import { killOnExit } from '../harness/processes.js';
import { computePhase, computePodStatus, type ContainerRecord, type ContainerState } from './pod-status.js';

type Terminated = Extract<ContainerState, { kind: 'terminated' }>;

/** What a worker needs from the agent. */
export interface PodWorkerDeps {
  readonly nodeName: string;
  readonly hostIP: string;
  readonly cpuCores: number;
  readonly memoryBytes: number;
  readonly images: ImageMap;
  readonly envSources: EnvSources;
  /** Environment every container starts from (PATH, HOME, KUBERNETES_SERVICE_*, …). */
  readonly baseEnv: Readonly<Record<string, string>>;
  /** Folder for this pod's logs, one sub-folder per container, one file per run. */
  readonly logDir: string;
  /** Writes the computed status; resolves false when the pod no longer exists. */
  writeStatus(pod: V1Pod, build: (current: V1Pod) => V1Pod['status']): Promise<boolean>;
  /** Deletes the pod with grace 0, guarded by its uid. */
  deletePod(pod: V1Pod): Promise<void>;
  /** Extra per-pod environment (addresses, ports) from the agent. */
  readonly podEnv: Readonly<Record<string, string>>;
  readonly podIP: string;
  /** Delay before restart number n (0-based), like the kubelet's crash-loop back-off but short. */
  backoffMs(n: number): number;
  log(line: string): void;
}

interface Slot {
  readonly spec: V1Container;
  record: ContainerRecord;
  child?: ChildProcess | undefined;
  exited?: Promise<void>;
  restartTimer?: NodeJS.Timeout;
}

/** The lifecycle of one pod on the node. */
export class PodWorker {
  readonly uid: string;
  /** Resolves when the worker has nothing left to do (terminal status written, or pod removed). */
  readonly closed: Promise<void>;
  #pod: V1Pod;
  #deps: PodWorkerDeps;
  #init: Slot[];
  #main: Slot[];
  #startTime = new Date();
  #terminating = false;
  #gone = false;
  #statusDirty = false;
  #statusLoop: Promise<void> | undefined;
  #resolveClosed!: () => void;

  constructor(pod: V1Pod, deps: PodWorkerDeps) {
    this.#pod = pod;
    this.#deps = deps;
    this.uid = pod.metadata?.uid ?? '';
    const slot = (spec: V1Container): Slot => ({
      spec,
      record: { name: spec.name, image: spec.image ?? '', restartCount: 0, state: { kind: 'waiting', reason: 'ContainerCreating' }, final: false, runId: '' },
    });
    this.#init = (pod.spec?.initContainers ?? []).map(slot);
    this.#main = (pod.spec?.containers ?? []).map(slot);
    this.closed = new Promise((r) => (this.#resolveClosed = r));
  }

  get #restartPolicy(): 'Always' | 'OnFailure' | 'Never' {
    const p = this.#pod.spec?.restartPolicy;
    return p === 'Never' || p === 'OnFailure' ? p : 'Always';
  }

  /** Starts the pod; returns at once. */
  start(): void {
    this.#pushStatus();
    void this.#run().catch((err: unknown) => this.#deps.log(`pod ${this.#key()}: ${String(err)}`));
  }

  /** Tells the worker about a newer version of its pod (deletion is noticed here). */
  update(pod: V1Pod): void {
    this.#pod = pod;
    if (pod.metadata?.deletionTimestamp !== undefined && !this.#terminating) {
      const grace = pod.metadata.deletionGracePeriodSeconds ?? pod.spec?.terminationGracePeriodSeconds ?? 30;
      void this.terminate(grace).then(() => this.#deps.deletePod(this.#pod));
    }
  }

  /** The pod was removed from the API (e.g. force-deleted): kill everything now. */
  async removed(): Promise<void> {
    this.#gone = true;
    await this.terminate(0);
  }

  /** For agent shutdown: stops every container like terminate(), then stops reporting status. */
  async shutdown(graceSeconds: number): Promise<void> {
    await this.terminate(graceSeconds);
    this.#gone = true;
  }

  /** Stops every container: SIGTERM, SIGKILL after `graceSeconds`; no restarts afterwards. */
  async terminate(graceSeconds: number): Promise<void> {
    this.#terminating = true;
    const slots = [...this.#init, ...this.#main];
    for (const s of slots) {
      if (s.restartTimer !== undefined) clearTimeout(s.restartTimer);
      if (s.record.state.kind !== 'running') s.record = { ...s.record, final: true };
    }
    const running = slots.filter((s) => s.child !== undefined && s.record.state.kind === 'running');
    for (const s of running) signalGroup(s.child, 'SIGTERM');
    const killTimer = setTimeout(
      () => {
        for (const s of running) signalGroup(s.child, 'SIGKILL');
      },
      Math.max(0, graceSeconds) * 1000,
    );
    await Promise.all(running.map((s) => s.exited ?? Promise.resolve()));
    clearTimeout(killTimer);
    this.#pushStatus();
    await this.#statusLoop;
    this.#resolveClosed();
  }

  /** Path of the log of `container`'s run number `restart` (default: the latest run). */
  logPath(container: string, restart?: number): string | undefined {
    const slot = [...this.#init, ...this.#main].find((s) => s.spec.name === container);
    if (slot === undefined) return undefined;
    const n = restart ?? Math.max(0, slot.record.restartCount - (slot.record.state.kind === 'waiting' ? 1 : 0));
    return join(this.#deps.logDir, container, `${n}.log`);
  }

  #key(): string {
    return `${this.#pod.metadata?.namespace ?? ''}/${this.#pod.metadata?.name ?? ''}`;
  }

  async #run(): Promise<void> {
    for (const s of this.#init) {
      // Init containers always restart on failure unless the policy is Never (kubelet rule).
      const ok = await this.#runUntilDone(s, this.#restartPolicy === 'Never' ? 'Never' : 'OnFailure');
      if (!ok || this.#terminating) {
        for (const m of this.#main) m.record = { ...m.record, final: true };
        this.#pushStatus();
        await this.#statusLoop;
        this.#resolveClosed();
        return;
      }
    }
    await Promise.all(this.#main.map((s) => this.#runUntilDone(s, this.#restartPolicy)));
    this.#pushStatus();
    await this.#statusLoop;
    if (!this.#terminating) this.#resolveClosed();
  }

  /** Runs a container, restarting it per `policy`; resolves true if its last run exited 0. */
  async #runUntilDone(s: Slot, policy: 'Always' | 'OnFailure' | 'Never'): Promise<boolean> {
    for (;;) {
      if (this.#terminating) return false;
      const result = await this.#runOnce(s);
      if (result === 'config-error') {
        // The kubelet keeps retrying CreateContainerConfigError (e.g. a ConfigMap created later).
        await sleep(1000);
        continue;
      }
      const succeeded = result.exitCode === 0;
      // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- terminate() sets it while the container runs
      const restart = !this.#terminating && (policy === 'Always' || (policy === 'OnFailure' && !succeeded));
      if (!restart) {
        s.record = { ...s.record, final: true };
        this.#pushStatus();
        return succeeded;
      }
      const delay = this.#deps.backoffMs(s.record.restartCount);
      s.record = {
        ...s.record,
        restartCount: s.record.restartCount + 1,
        lastTerminated: result,
        state: { kind: 'waiting', reason: 'CrashLoopBackOff', message: `back-off ${delay} ms restarting failed container` },
      };
      this.#pushStatus();
      await new Promise<void>((r) => (s.restartTimer = setTimeout(r, delay)));
    }
  }

  async #runOnce(s: Slot): Promise<Terminated | 'config-error'> {
    const image = s.spec.image ?? '';
    const entry = lookupImage(this.#deps.images, image);
    if (entry === undefined) {
      s.record = {
        ...s.record,
        state: { kind: 'waiting', reason: 'ErrImagePull', message: `image ${image} is not mapped to a local command (GMT_NODE_AGENT_IMAGES)` },
      };
      this.#pushStatus();
      return 'config-error';
    }
    let env: Record<string, string>;
    try {
      const facts: NodeFacts = {
        nodeName: this.#deps.nodeName,
        hostIP: this.#deps.hostIP,
        podIP: this.#deps.podIP,
        cpuCores: this.#deps.cpuCores,
        memoryBytes: this.#deps.memoryBytes,
      };
      env = await computeContainerEnv(this.#pod, s.spec, facts, this.#deps.envSources, {
        ...this.#deps.baseEnv,
        ...entry.env,
        ...this.#deps.podEnv,
      });
    } catch (err) {
      if (!(err instanceof ContainerConfigError)) throw err;
      s.record = { ...s.record, state: { kind: 'waiting', reason: 'CreateContainerConfigError', message: err.message } };
      this.#pushStatus();
      return 'config-error';
    }
    const vars = new Map(Object.entries(env));
    const expand = (xs: readonly string[] | undefined): string[] | undefined => xs?.map((x) => expandVars(x, vars));
    const argv = computeArgv(entry, expand(s.spec.command), expand(s.spec.args));
    const [program, ...args] = argv;
    if (program === undefined) {
      s.record = { ...s.record, state: { kind: 'waiting', reason: 'CreateContainerError', message: 'no command specified' } };
      this.#pushStatus();
      return 'config-error';
    }
    const runId = `${this.uid}/${s.spec.name}/${s.record.restartCount}`;
    const logFile = join(this.#deps.logDir, s.spec.name, `${s.record.restartCount}.log`);
    await mkdir(join(this.#deps.logDir, s.spec.name), { recursive: true });
    const fh = await open(logFile, 'a');
    const startedAt = new Date();
    let child: ChildProcess;
    let resultPromise: Promise<Terminated>;
    try {
      // detached: its own process group, so signals reach `sh -c` grandchildren too.
      child = spawn(program, args, { cwd: s.spec.workingDir ?? entry.workingDir ?? process.cwd(), env, stdio: ['ignore', fh.fd, fh.fd], detached: true });
      const unregister = child.pid !== undefined ? killOnExit(-child.pid) : () => true;
      // Listen before any await: a short-lived process can exit while we close the log file.
      resultPromise = new Promise<Terminated>((resolve) => {
        const done = (exitCode: number, signal?: number, message?: string): void => {
          unregister();
          resolve({
            kind: 'terminated',
            exitCode,
            ...(signal !== undefined ? { signal } : {}),
            reason: exitCode === 0 ? 'Completed' : 'Error',
            startedAt,
            finishedAt: new Date(),
            ...(message !== undefined ? { message } : {}),
          });
        };
        child.once('error', (err) => done(128, undefined, err.message)); // e.g. ENOENT: no such program
        child.once('exit', (code, signal) => {
          // A signal death is reported as 128+n, as container runtimes do.
          const n = signal !== null ? signalNumber(signal) : undefined;
          done(code ?? 128 + (n ?? 0), n);
        });
      });
    } finally {
      await fh.close();
    }
    s.child = child;
    s.record = { ...s.record, runId, state: { kind: 'running', startedAt } };
    this.#pushStatus();
    s.exited = resultPromise.then(() => undefined);
    const result = await resultPromise;
    s.child = undefined;
    s.record = { ...s.record, state: result };
    this.#pushStatus();
    return result;
  }

  /** Marks status dirty and makes sure one writer loop runs; coalesces bursts of changes. */
  #pushStatus(): void {
    this.#statusDirty = true;
    this.#statusLoop ??= (async () => {
      let failures = 0;
      while (this.#statusDirty && !this.#gone) {
        this.#statusDirty = false;
        const view = {
          init: this.#init.map((s) => s.record),
          containers: this.#main.map((s) => s.record),
          podIP: this.#deps.podIP,
          hostIP: this.#deps.hostIP,
          startTime: this.#startTime,
        };
        try {
          const exists = await this.#deps.writeStatus(this.#pod, (current) => computePodStatus({ ...view, previous: current.status, now: new Date() }));
          if (!exists) this.#gone = true;
        } catch (err) {
          this.#deps.log(`pod ${this.#key()}: status write failed: ${String(err)}`);
          // Give up after ~30 s of failures (API server gone); the next change tries again.
          this.#statusDirty = ++failures < 60;
          await sleep(500);
        }
      }
      this.#statusLoop = undefined;
    })();
  }

  /** The phase the agent currently computes (for tests and diagnostics). */
  get phase(): string {
    return computePhase({ init: this.#init.map((s) => s.record), containers: this.#main.map((s) => s.record) });
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function signalGroup(child: ChildProcess | undefined, signal: NodeJS.Signals): void {
  if (child?.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // already gone
  }
}

const SIGNALS: Readonly<Record<string, number>> = {
  SIGHUP: 1,
  SIGINT: 2,
  SIGQUIT: 3,
  SIGABRT: 6,
  SIGKILL: 9,
  SIGSEGV: 11,
  SIGPIPE: 13,
  SIGALRM: 14,
  SIGTERM: 15,
};

function signalNumber(signal: NodeJS.Signals): number | undefined {
  return SIGNALS[signal];
}
