/**
 * The spec → trainer config mapping, driven by the contract's one table (contract/spec-to-config.ts).
 * Per-pod keys (rank, attempt, jobId, natsUrl, checkpointDir, metricsPort) come from the pod's
 * environment (docs/architecture.md §4) and are not set here.
 */
import type { z } from 'zod';
import type { TrainerConfigSchema } from '../../../contract/config.js';
import { SPEC_TO_TRAINER_KEY } from '../../../contract/spec-to-config.js';
import { resolveSource } from './sources.js';
import type { GmtFineTuneSpec } from './spec.js';

/** A trainer config file's content: every key optional, as the trainer's config file is. */
export type TrainerConfigInput = Partial<z.input<typeof TrainerConfigSchema>>;

/** The value at dotted `path` under `root` (undefined when a step is missing). */
function valueAt(root: unknown, path: string): unknown {
  let v: unknown = root;
  for (const part of path.split('.')) {
    if (typeof v !== 'object' || v === null) return undefined;
    v = (v as Record<string, unknown>)[part];
  }
  return v;
}

/** Trainer keys whose values are data/model sources: pvc://<claim>/<path> becomes the mounted path. */
const SOURCE_KEYS = new Set(['baseModel', 'trainData', 'evalData']);

/**
 * The trainer config for `spec` (pure; the children builder mounts it as GMT_CONFIG). Unset optional
 * fields (dataset.eval) are left out; the spec schema reuses the trainer's field schemas, so every
 * value is one the trainer accepts (test/unit/operator/api.test.ts parses the result). Sources given
 * as pvc://<claim>/<path> are named by the path the worker mounts the claim at (sources.ts).
 */
export function computeTrainerConfig(spec: GmtFineTuneSpec): TrainerConfigInput {
  const out: Record<string, unknown> = {};
  for (const [path, key] of Object.entries(SPEC_TO_TRAINER_KEY)) {
    const v = valueAt(spec, path);
    if (v !== undefined) out[key] = SOURCE_KEYS.has(key) && typeof v === 'string' ? resolveSource(spec, v) : v;
  }
  return out;
}
