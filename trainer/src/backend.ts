/**
 * TensorFlow.js backend selection: `tensorflow` (@tensorflow/tfjs-node-gpu, else @tensorflow/tfjs-node)
 * when installed and, for `auto`, only when a GPU is usable; else `wasm`; else `cpu`.
 * tfjs-node(-gpu) is an optional dependency: its install script downloads libtensorflow, which fails
 * on machines without access to that host, and npm then leaves it out (see README, "GPU images").
 */
import { existsSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs-core';
// The union package registers every op's gradient (tfjs-core's node bundle has none) and the cpu backend.
import '@tensorflow/tfjs';
import { ConfigError } from './errors.js';

/** What the user may ask for. */
export type BackendChoice = 'auto' | 'tensorflow' | 'wasm' | 'cpu';
/** What actually runs. */
export type BackendName = 'tensorflow' | 'wasm' | 'cpu';

/** The backend in use and how it was chosen. */
export interface BackendInfo {
  readonly name: BackendName;
  /** The npm package that provides it. */
  readonly provider: string;
  /** Why `auto` picked it, or that it was requested. */
  readonly reason: string;
}

let active: BackendInfo | undefined;

/** Whether an NVIDIA GPU device node is present (the driver exposes /dev/nvidia0 and friends). */
export function gpuVisible(): boolean {
  return existsSync('/dev/nvidiactl') || existsSync('/dev/nvidia0');
}

async function tryTensorflow(): Promise<string | undefined> {
  for (const pkg of ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node']) {
    try {
      await import(pkg);
      if (await tf.setBackend('tensorflow')) return pkg;
    } catch {
      // Not installed, or libtensorflow missing: try the next provider.
    }
  }
  return undefined;
}

async function useWasm(): Promise<boolean> {
  try {
    await import('@tensorflow/tfjs-backend-wasm');
    return await tf.setBackend('wasm');
  } catch {
    return false;
  }
}

/** Initialise TensorFlow.js with the requested backend; idempotent for the same choice. */
export async function initBackend(choice: BackendChoice): Promise<BackendInfo> {
  if (active !== undefined && (choice === 'auto' || choice === active.name)) return active;
  // Production mode: no per-op debug checks and no "install tfjs-node" banner from the cpu backend.
  tf.enableProdMode();
  let info: BackendInfo | undefined;
  if (choice === 'tensorflow' || (choice === 'auto' && gpuVisible())) {
    const pkg = await tryTensorflow();
    if (pkg !== undefined) info = { name: 'tensorflow', provider: pkg, reason: choice === 'auto' ? 'GPU device present' : 'requested' };
    else if (choice === 'tensorflow') {
      throw new ConfigError(
        'backend "tensorflow" requested but neither @tensorflow/tfjs-node-gpu nor @tensorflow/tfjs-node could be loaded (install one with its libtensorflow; see README "GPU images")',
      );
    }
  }
  if (info === undefined && (choice === 'wasm' || choice === 'auto')) {
    if (await useWasm())
      info = { name: 'wasm', provider: '@tensorflow/tfjs-backend-wasm', reason: choice === 'auto' ? 'no usable GPU; wasm available' : 'requested' };
    else if (choice === 'wasm') throw new ConfigError('backend "wasm" requested but @tensorflow/tfjs-backend-wasm could not be initialised');
  }
  if (info === undefined) {
    if (!(await tf.setBackend('cpu'))) throw new ConfigError('the cpu backend could not be initialised');
    info = { name: 'cpu', provider: '@tensorflow/tfjs-backend-cpu', reason: choice === 'auto' ? 'fallback' : 'requested' };
  }
  await tf.ready();
  active = info;
  return info;
}
