/** Builders shared by the checkpoint tests (and the kill-writer child process). */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type CheckpointPayload, type TrainerState } from '../../../trainer/src/checkpoint/index.js';
import { type ModelConfig } from '../../../trainer/src/model/config.js';
import { ParamLayout } from '../../../trainer/src/model/params.js';

/** A micro model (fast to write and read). */
export const MICRO: ModelConfig = { vocabSize: 40, nPositions: 16, nEmbd: 32, nLayer: 2, nHead: 4, layerNormEps: 1e-5 };

/** A trainer config record as the loop would embed it. */
export const RUN_CONFIG: Readonly<Record<string, unknown>> = { lr: 3e-4, steps: 10, maskMode: 'update', optimizer: { kind: 'adamw', beta1: 0.9 } };

/** Deterministic awkward fp32 values (negative zero, subnormals, large magnitudes) for bit-exactness. */
export function values(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = i % 97 === 0 ? -0 : i % 89 === 0 ? 1e-42 : (x / 0xffff_ffff - 0.5) * (i % 7 === 0 ? 1e6 : 0.1);
  }
  return out;
}

/** A trainer state for `step`. */
export function buildState(step: number, overrides: Partial<TrainerState> = {}): TrainerState {
  return {
    formatVersion: 1,
    step,
    totalSteps: 100,
    dataCursor: { epoch: 1, index: step * 3 },
    rngState: [1, 0xffff_ffff, 12345, step],
    configHash: 'hash-a',
    config: { ...RUN_CONFIG },
    datasetFingerprint: 'fp-1',
    skippedSteps: 0,
    maskStats: { keptRatio: 0.1, threshold: 0.00123, kept: 42 },
    metrics: { loss: 2.345678901234, tokensSeen: step * 512, samplesSeen: step * 8 },
    baseModel: 'bundled',
    createdAt: '2025-01-02T03:04:05.678Z',
    attempt: 0,
    worldSize: 1,
    ...overrides,
  };
}

/** A full payload for `step` of a model `config`. */
export function buildPayload(step: number, config: ModelConfig = MICRO, kind: 'adamw' | 'sgd' = 'adamw'): CheckpointPayload {
  const n = new ParamLayout(config).size;
  return {
    modelConfig: config,
    params: values(n, step + 1),
    optimizer: { kind, step, m: values(n, step + 1000), v: kind === 'adamw' ? values(n, step + 2000) : new Float32Array(0) },
    state: buildState(step),
  };
}

/** A fresh temporary directory and its cleanup. */
export async function tempDir(): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'gmt-ckpt-'));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** Whether two fp32 vectors are bit-identical. */
export function sameBits(a: Float32Array, b: Float32Array): boolean {
  return Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.byteLength), Buffer.from(b.buffer, b.byteOffset, b.byteLength)) === 0;
}
