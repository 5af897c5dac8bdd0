/**
 * Writing a checkpoint so that a kill at any moment leaves the previous `latest` valid: all files
 * go into a private temporary folder and are fsynced, the folder is renamed to `step-NNNNNNNN`
 * (rename(2) is atomic within a file system), the root is fsynced, and only then is the `latest`
 * pointer replaced atomically. Pruning runs last and only ever removes what is no longer needed.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { fsyncDir, writeFileAtomic } from '../fs-atomic.js';
import { type ModelConfig, ModelConfigSchema } from '../model/config.js';
import { ParamLayout } from '../model/params.js';
import { encodeSafetensors } from '../model/safetensors.js';
import { type OptimizerParams, type OptimizerState } from '../optim/optimizer.js';
import {
  CHECKPOINT_FILES,
  LATEST_FILE,
  MODEL_CONFIG_METADATA_KEY,
  type Manifest,
  parseLatestTmpName,
  parseSideDirName,
  parseStepDirName,
  readManifest,
  sha256Hex,
  stepDirName,
} from './files.js';
import { buildHfConfig } from './hf-config.js';
import { type TrainerState, TrainerStateSchema } from './trainer-state.js';

/** Optimizer state together with the optimizer it belongs to. */
export type OptimizerSnapshot = OptimizerState & { readonly kind: OptimizerParams['kind'] };

/** What one checkpoint holds. */
export interface CheckpointPayload {
  readonly modelConfig: ModelConfig;
  /** Flat parameters in ParamLayout order. */
  readonly params: Float32Array;
  /** Full (unsharded) optimizer state over the same flat vector. */
  readonly optimizer: OptimizerSnapshot;
  readonly state: TrainerState;
}

/** Options of writeCheckpoint. */
export interface WriteCheckpointOptions {
  /** Complete checkpoints to keep (the one just written included); at least 1. */
  readonly keep: number;
}

/** Temporary folders this process is writing right now (its own pid alone does not prove it). */
const activeSideDirs = new Set<string>();

/** The model.safetensors bytes: Hugging Face names in layout order, fp32, config in metadata. */
export function encodeModelFile(config: ModelConfig, params: Float32Array): Uint8Array {
  const layout = new ParamLayout(config);
  if (params.length !== layout.size) throw new RangeError(`params have ${params.length} entries, the model has ${layout.size}`);
  const tensors = layout.slots.map((s) => [s.name, { shape: s.shape, data: params.subarray(s.offset, s.offset + s.size) }] as const);
  return encodeSafetensors(tensors, { format: 'pt', [MODEL_CONFIG_METADATA_KEY]: JSON.stringify(config) });
}

/** The optimizer.safetensors bytes: flat `m` and (AdamW) `v`, with kind, step and shard range. */
export function encodeOptimizerFile(opt: OptimizerSnapshot, total: number): Uint8Array {
  if (opt.m.length !== total) throw new RangeError(`optimizer m has ${opt.m.length} entries, expected ${total}`);
  if (opt.v.length !== 0 && opt.v.length !== total) throw new RangeError(`optimizer v has ${opt.v.length} entries, expected 0 or ${total}`);
  const tensors: Array<readonly [string, { shape: number[]; data: Float32Array }]> = [['m', { shape: [opt.m.length], data: opt.m }]];
  if (opt.v.length > 0) tensors.push(['v', { shape: [opt.v.length], data: opt.v }]);
  // offset/size/total describe the covered range of the flat vector, so that a data-parallel
  // writer can later store one shard per rank in the same format.
  return encodeSafetensors(tensors, {
    format: 'pt',
    kind: opt.kind,
    step: String(opt.step),
    offset: '0',
    size: String(total),
    total: String(total),
  });
}

async function writeSynced(path: string, data: Uint8Array | string): Promise<void> {
  const fh = await open(path, 'wx');
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'; // exists, owned by someone else
  }
}

/** Whether a side folder/file named with `pid` may belong to a writer that is still running. */
function ownedByLiveWriter(path: string, pid: number): boolean {
  if (pid === process.pid) return activeSideDirs.has(path); // a restarted container often reuses pids
  return isAlive(pid);
}

function sideName(kind: 'tmp' | 'replaced' | 'deleting', step: number): string {
  return `.${kind}-${stepDirName(step)}-${process.pid}-${randomBytes(6).toString('hex')}`;
}

/**
 * Write a checkpoint of `payload` under `dir` as `step-NNNNNNNN` (NNNNNNNN = state.step), point
 * `latest` at it, prune to `keep` checkpoints and clean up after killed writers. Returns its path.
 */
export async function writeCheckpoint(dir: string, payload: CheckpointPayload, opts: WriteCheckpointOptions): Promise<string> {
  if (!Number.isInteger(opts.keep) || opts.keep < 1) throw new RangeError(`keep must be a positive integer, got ${opts.keep}`);
  const config = ModelConfigSchema.parse(payload.modelConfig);
  const state = TrainerStateSchema.parse(payload.state);
  const name = stepDirName(state.step);
  const modelBytes = encodeModelFile(config, payload.params);
  const optBytes = encodeOptimizerFile(payload.optimizer, payload.params.length);
  const files: ReadonlyArray<readonly [string, Uint8Array | string]> = [
    [CHECKPOINT_FILES.model, modelBytes],
    [CHECKPOINT_FILES.hfConfig, `${JSON.stringify(buildHfConfig(config), null, 2)}\n`],
    [CHECKPOINT_FILES.optimizer, optBytes],
    [CHECKPOINT_FILES.state, `${JSON.stringify(state, null, 2)}\n`],
  ];

  await mkdir(dir, { recursive: true });
  const tmp = join(dir, sideName('tmp', state.step));
  activeSideDirs.add(tmp);
  try {
    await mkdir(tmp);
    const manifest: Manifest = { formatVersion: 1, step: state.step, files: {} };
    for (const [file, data] of files) {
      await writeSynced(join(tmp, file), data);
      manifest.files[file] = { bytes: typeof data === 'string' ? Buffer.byteLength(data) : data.byteLength, sha256: sha256Hex(data) };
    }
    await writeSynced(join(tmp, CHECKPOINT_FILES.manifest), `${JSON.stringify(manifest, null, 2)}\n`); // last: marks completeness
    await fsyncDir(tmp);

    const final = join(dir, name);
    const replaced = await moveAsideIfExists(dir, final, state.step);
    try {
      await rename(tmp, final);
    } catch (e) {
      if (replaced !== undefined) await rename(replaced, final).catch(() => undefined); // put the old one back
      throw e;
    }
    await fsyncDir(dir);
    if (replaced !== undefined) {
      await rm(replaced, { recursive: true, force: true });
      activeSideDirs.delete(replaced);
    }
    await writeFileAtomic(join(dir, LATEST_FILE), `${name}\n`);
    await pruneCheckpoints(dir, name, opts.keep);
    return final;
  } finally {
    activeSideDirs.delete(tmp);
    await rm(tmp, { recursive: true, force: true }); // no-op after the rename
  }
}

/** Rename an existing `final` aside (same step written again after a resume); returns where to. */
async function moveAsideIfExists(dir: string, final: string, step: number): Promise<string | undefined> {
  const aside = join(dir, sideName('replaced', step));
  activeSideDirs.add(aside);
  try {
    await rename(final, aside);
    return aside;
  } catch (e) {
    activeSideDirs.delete(aside);
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

/** Whether a step folder looks complete (manifest readable, files of the listed sizes). Cheap. */
async function looksComplete(path: string): Promise<boolean> {
  try {
    const manifest = await readManifest(path);
    for (const [file, entry] of Object.entries(manifest.files)) {
      if ((await stat(join(path, file))).size !== entry.bytes) return false;
    }
    return true;
  } catch {
    return false;
  }
}

async function removeDir(dir: string, entry: string, step: number): Promise<void> {
  // Rename first so that a kill mid-delete never leaves a half-deleted `step-*` folder behind.
  const doomed = join(dir, sideName('deleting', step));
  activeSideDirs.add(doomed);
  try {
    await rename(join(dir, entry), doomed);
    await rm(doomed, { recursive: true, force: true });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  } finally {
    activeSideDirs.delete(doomed);
  }
}

/**
 * Keep `current` and the newest complete checkpoints up to `keep` in all; delete older ones,
 * incomplete step folders older than `current`, and side folders of writers no longer running
 * (a `.replaced-*` copy whose step folder is missing is renamed back instead).
 */
async function pruneCheckpoints(dir: string, current: string, keep: number): Promise<void> {
  const entries = await readdir(dir);
  const currentStep = parseStepDirName(current) ?? -1;
  for (const entry of entries) {
    const path = join(dir, entry);
    const tmpPid = parseLatestTmpName(entry);
    if (tmpPid !== undefined) {
      if (!ownedByLiveWriter(path, tmpPid)) await rm(path, { force: true });
      continue;
    }
    const side = parseSideDirName(entry);
    if (side === undefined || ownedByLiveWriter(path, side.pid)) continue;
    if (side.kind === 'replaced' && !entries.includes(stepDirName(side.step)) && (await looksComplete(path))) {
      await rename(path, join(dir, stepDirName(side.step)));
    } else {
      await rm(path, { recursive: true, force: true });
    }
  }
  const steps = (await readdir(dir))
    .map((entry) => ({ entry, step: parseStepDirName(entry) }))
    .filter((s): s is { entry: string; step: number } => s.step !== undefined && s.entry !== current)
    .sort((a, b) => b.step - a.step);
  let kept = 1; // current
  for (const { entry, step } of steps) {
    const complete = await looksComplete(join(dir, entry));
    if (complete && kept < keep) {
      kept++;
      continue;
    }
    if (complete || step < currentStep) await removeDir(dir, entry, step);
  }
  await fsyncDir(dir);
}
