/**
 * TensorFlow.js backend selection. `auto` picks, in order:
 *  1. `tensorflow` on a GPU: @tensorflow/tfjs-node-gpu built by `npm run setup:native -- --gpu` and an
 *     NVIDIA device visible;
 *  2. `tensorflow` on the CPU: @tensorflow/tfjs-node built by `npm run setup:native` (5-20× wasm);
 *  3. `wasm` (@tensorflow/tfjs-backend-wasm, one thread);
 *  4. `cpu` (pure JavaScript).
 * It says which and why. The native packages are installed by `npm ci` without their install scripts
 * (which download from a host our build machines cannot reach); setup:native builds their binding
 * against the PyPI TensorFlow wheels (trainer/src/native/spec.ts, docs/native-backend.md).
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
import util from 'node:util';
import * as tf from '@tensorflow/tfjs-core';
// The union package registers every op's gradient (tfjs-core's node bundle has none) and the cpu backend.
import '@tensorflow/tfjs';
import { ConfigError } from './errors.js';
import { enableFusedKernels, loadFusedKernels } from './model/native-ops.js';
import { BINDING_RELPATH, FUSED_OPS_RELPATH, tfjsPackageFor, type NativeVariant } from './native/spec.js';

/** What the user may ask for. */
export type BackendChoice = 'auto' | 'tensorflow' | 'wasm' | 'cpu';
/** What actually runs. */
export type BackendName = 'tensorflow' | 'wasm' | 'cpu';

/** The backend in use and how it was chosen. */
export interface BackendInfo {
  readonly name: BackendName;
  /** Where the kernels run: `gpu` only for tfjs-node-gpu with a visible device. */
  readonly device: 'cpu' | 'gpu';
  /** The npm package that provides it. */
  readonly provider: string;
  /** Why `auto` picked it, or that it was requested. */
  readonly reason: string;
  /** Kernel threads (TensorFlow intra-op pool); 1 for wasm and cpu, which are single-threaded here. */
  readonly threads: number;
  /** `tensorflow/gpu`, `tensorflow/cpu`, `wasm` or `cpu`: the label of metrics and progress. */
  readonly label: string;
  /**
   * Native CPU only: whether GMT's fused kernels (trainer/native/gmt_ops.cc) are in use, and why (not).
   * Elsewhere `false` with the reason.
   */
  readonly fusedKernels: boolean;
  readonly fusedKernelsReason: string;
}

/** Options of initBackend. */
export interface BackendOptions {
  /** TensorFlow threads; 0 = every core this process may use (cgroup quota and affinity). */
  readonly threads?: number;
  /** GPU: TensorFlow's deterministic kernels (TF_DETERMINISTIC_OPS=1), for bit-identical ranks and resumes. Default true. */
  readonly deterministic?: boolean;
  /** Native CPU: load GMT's fused kernels (trainer/native/gmt_ops.cc). Default true. */
  readonly fusedKernels?: boolean;
}

let active: BackendInfo | undefined;
const require = createRequire(import.meta.url);

/** Whether an NVIDIA GPU device node is present (the driver exposes /dev/nvidiactl and /dev/nvidiaN). */
export function gpuVisible(): boolean {
  return existsSync('/dev/nvidiactl') || existsSync('/dev/nvidia0');
}

/** The CPU quota of this process's cgroup in cores (v2 cpu.max or v1 cfs quota), if one is set. */
function cgroupCpuQuota(): number | undefined {
  const read = (p: string): string | undefined => {
    try {
      return readFileSync(p, 'utf8').trim();
    } catch {
      return undefined;
    }
  };
  const v2 = read('/sys/fs/cgroup/cpu.max');
  if (v2 !== undefined) {
    const [quota, period] = v2.split(/\s+/);
    if (quota !== undefined && quota !== 'max' && period !== undefined) return Number(quota) / Number(period);
    return undefined;
  }
  const quota = Number(read('/sys/fs/cgroup/cpu/cpu.cfs_quota_us') ?? read('/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us'));
  const period = Number(read('/sys/fs/cgroup/cpu/cpu.cfs_period_us') ?? read('/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us'));
  return quota > 0 && period > 0 ? quota / period : undefined;
}

/** Every core the process (pod) is given: affinity (availableParallelism) capped by the cgroup quota, ≥ 1. */
export function defaultThreads(): number {
  const quota = cgroupCpuQuota();
  const cores = availableParallelism();
  return Math.max(1, quota === undefined ? cores : Math.min(cores, Math.ceil(quota)));
}

/** The package folder of a native variant, if installed, and whether setup:native built its binding. */
function nativeInstall(variant: NativeVariant): { dir: string; built: boolean } | undefined {
  try {
    const dir = dirname(require.resolve(`${tfjsPackageFor(variant)}/package.json`));
    return { dir, built: existsSync(join(dir, BINDING_RELPATH)) };
  } catch {
    return undefined;
  }
}

/**
 * tfjs-node 4.22 calls util.isNullOrUndefined, which Node 23 removed; restore it (same meaning) before
 * the package loads.
 */
function restoreIsNullOrUndefined(): void {
  const u = util as unknown as Record<string, unknown>;
  if (typeof u['isNullOrUndefined'] !== 'function') u['isNullOrUndefined'] = (v: unknown): boolean => v === null || v === undefined;
  // util.isArray still exists but warns (DEP0044) on first use; Array.isArray is what it does.
  u['isArray'] = Array.isArray;
}

/**
 * Loads tfjs-node(-gpu). TensorFlow reads its thread counts from the environment when the binding
 * creates its eager context (on load), so they are set first; values already in the environment win.
 */
async function loadNative(variant: NativeVariant, threads: number, deterministic: boolean): Promise<void> {
  if (variant === 'gpu') {
    // fp32 as on the CPU: TensorFlow runs fp32 matmuls/convolutions as TF32 on Ampere+ GPUs by default
    // (10-bit mantissa), which would move results far beyond the golden tolerances.
    process.env['NVIDIA_TF32_OVERRIDE'] ??= '0';
    // GPU kernels with atomics (UnsortedSegmentSum, some reductions, cuDNN algorithm picks) differ run to
    // run; TensorFlow's deterministic mode picks deterministic implementations (or fails loudly).
    if (deterministic) process.env['TF_DETERMINISTIC_OPS'] ??= '1';
  }
  process.env['TF_NUM_INTRAOP_THREADS'] ??= String(threads);
  process.env['TF_NUM_INTEROP_THREADS'] ??= String(threads);
  process.env['OMP_NUM_THREADS'] ??= String(threads);
  process.env['TF_CPP_MIN_LOG_LEVEL'] ??= '2'; // TF's C++ INFO/WARNING banners would drown the trainer's log
  restoreIsNullOrUndefined();
  await import(tfjsPackageFor(variant));
  if (!(await tf.setBackend('tensorflow'))) throw new Error(`${tfjsPackageFor(variant)} loaded but the tensorflow backend did not initialise`);
}

async function useWasm(): Promise<boolean> {
  try {
    await import('@tensorflow/tfjs-backend-wasm');
    return await tf.setBackend('wasm');
  } catch {
    return false;
  }
}

function info(
  name: BackendName,
  device: 'cpu' | 'gpu',
  provider: string,
  reason: string,
  threads: number,
  fused: { loaded: boolean; reason: string } = { loaded: false, reason: `${name} backend: the fused kernels are native TensorFlow CPU kernels` },
): BackendInfo {
  return {
    name,
    device,
    provider,
    reason,
    threads,
    label: name === 'tensorflow' ? `tensorflow/${device}` : name,
    fusedKernels: fused.loaded,
    fusedKernelsReason: fused.reason,
  };
}

const SETUP_HINT = 'run `npm run setup:native` (or `-- --gpu`)';

/** Whether `npm run setup:native` has built a native binding (CPU or GPU) into node_modules. */
export function nativeBuilt(): boolean {
  return nativeInstall('cpu')?.built === true || nativeInstall('gpu')?.built === true;
}

/** Picks the native variant: GPU when its binding is built and a device is visible, else CPU. */
function nativeCandidate(): { variant: NativeVariant; dir: string; why: string } | { variant: undefined; why: string } {
  const gpu = nativeInstall('gpu'),
    cpu = nativeInstall('cpu');
  const visible = gpuVisible();
  if (visible && gpu?.built === true) return { variant: 'gpu', dir: gpu.dir, why: 'GPU device visible and tfjs-node-gpu built' };
  if (cpu?.built === true) {
    return {
      variant: 'cpu',
      dir: cpu.dir,
      why: visible ? 'GPU device visible but tfjs-node-gpu not built; native CPU backend' : 'no GPU device visible; native CPU backend built',
    };
  }
  if (gpu?.built === true) return { variant: 'gpu', dir: gpu.dir, why: 'tfjs-node-gpu built (no GPU device visible: TensorFlow runs its CPU kernels)' };
  return { variant: undefined, why: `native backend not built (${SETUP_HINT})` };
}

/** Initialise TensorFlow.js with the requested backend; idempotent for the same choice. */
export async function initBackend(choice: BackendChoice, opts: BackendOptions = {}): Promise<BackendInfo> {
  if (active !== undefined && (choice === 'auto' || choice === active.name)) {
    if (active.name !== 'tensorflow') return active;
    const f = enableFusedKernels(opts.fusedKernels ?? true);
    active = { ...active, fusedKernels: f.loaded, fusedKernelsReason: f.reason };
    return active;
  }
  const threads = opts.threads === undefined || opts.threads === 0 ? defaultThreads() : opts.threads;
  // Production mode: no per-op debug checks and no "install tfjs-node" banner from the cpu backend.
  tf.enableProdMode();
  let picked: BackendInfo | undefined;
  let why = '';
  if (choice === 'tensorflow' || choice === 'auto') {
    const cand = nativeCandidate();
    why = cand.why;
    if (cand.variant !== undefined) {
      try {
        await loadNative(cand.variant, threads, opts.deterministic ?? true);
        const device = cand.variant === 'gpu' && gpuVisible() ? 'gpu' : 'cpu';
        picked = info(
          'tensorflow',
          device,
          tfjsPackageFor(cand.variant),
          choice === 'auto' ? cand.why : 'requested',
          Number(process.env['TF_NUM_INTRAOP_THREADS']),
          loadFusedKernels(join(cand.dir, FUSED_OPS_RELPATH), device === 'gpu', Number(process.env['TF_NUM_INTRAOP_THREADS']), opts.fusedKernels ?? true),
        );
      } catch (err) {
        why = `${tfjsPackageFor(cand.variant)} failed to load: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`;
      }
    }
    if (picked === undefined && choice === 'tensorflow') throw new ConfigError(`backend "tensorflow" requested but unavailable: ${why}`);
  }
  if (picked === undefined && (choice === 'wasm' || choice === 'auto')) {
    if (await useWasm()) picked = info('wasm', 'cpu', '@tensorflow/tfjs-backend-wasm', choice === 'auto' ? `${why}; wasm` : 'requested', 1);
    else if (choice === 'wasm') throw new ConfigError('backend "wasm" requested but @tensorflow/tfjs-backend-wasm could not be initialised');
    else why = `${why}; wasm failed to initialise`;
  }
  if (picked === undefined) {
    if (!(await tf.setBackend('cpu'))) throw new ConfigError('the cpu backend could not be initialised');
    picked = info('cpu', 'cpu', '@tensorflow/tfjs-backend-cpu', choice === 'auto' ? `${why}; pure-JavaScript fallback` : 'requested', 1);
  }
  await tf.ready();
  active = picked;
  return picked;
}
